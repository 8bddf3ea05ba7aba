"""The pure core: every decision and every flow, with no I/O (see docs/architecture.md)."""
