"""Test support that is not part of the app: the accessibility walker and the sink recorder."""
