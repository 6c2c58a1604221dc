"""Palaver broker."""
