"""Typed, versioned settings."""
