"""Palaver store."""
