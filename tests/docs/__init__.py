"""Tests that keep the documentation true to the code."""
