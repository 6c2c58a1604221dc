"""Palaver gateway."""
