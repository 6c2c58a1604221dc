"""Palaver http."""
