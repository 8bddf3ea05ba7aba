"""Unit tests of the pure core: no I/O, no environment, milliseconds each."""
