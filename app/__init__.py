"""Sightline: a private, local describer for people who are blind or have low vision."""

__version__ = "0.1.0"
