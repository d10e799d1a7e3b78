"""The model-store tests' shared fixtures (guard, hub, dest): see hub_fixtures.py."""

from tests.unit.hub_fixtures import dest, guard, hub  # noqa: F401 (fixtures made visible to tests/unit)
