"""Names the docs show on purpose although no setting has them: the misspellings in the examples
of the unknown-variable warning. Add a deliberate one here; a real setting needs a Settings field.
Shared by the drift and the snippet tests."""

from __future__ import annotations

NOT_SETTINGS = frozenset({"DCR_ALLOWED_SCOPE", "DCR_RATE_LIMT"})
