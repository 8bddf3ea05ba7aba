"""Tests of the test infrastructure (``tests/support``): what it starts, it stops."""
