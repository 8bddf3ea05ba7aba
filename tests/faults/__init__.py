"""Fault injection under load (see harness.py)."""
