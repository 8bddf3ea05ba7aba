"""Property-based tests (Hypothesis) over the HTTP surface of both middlewares."""
