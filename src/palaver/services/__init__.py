"""Palaver services."""
