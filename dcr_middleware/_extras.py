"""The optional extras, and how to install one, for error messages.

The package may not be on the index a user's pip reads (a wheel or a checkout), so
``pip install 'dcr-middleware[metrics]'`` can fail. Installing the missing requirement itself
always works, whatever the project was installed from; a checkout can also take the extra.
"""

from __future__ import annotations

# The first requirement of each extra in pyproject.toml (a test keeps the two equal).
EXTRAS = {
    "cimd": "httpx>=0.25",
    "demo": "uvicorn[standard]>=0.30",
    "mcp": "mcp>=2.3",
    "metrics": "prometheus-client>=0.20",
    "otel": "opentelemetry-api>=1.30",
}


def install_hint(extra: str) -> str:
    """``pip install '<requirement>'`` for ``extra``, and the checkout's form of the extra."""
    return (
        f"pip install '{EXTRAS[extra]}' (the {extra!r} extra; "
        f"from a checkout: pip install '.[{extra}]')"
    )
