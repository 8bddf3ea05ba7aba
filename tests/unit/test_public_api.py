"""The public surface: pinned names, no environment read at import, no redis in the pure core."""

from __future__ import annotations

import dataclasses
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import dcr_middleware
from dcr_middleware.core.settings import Settings

# Every module of the core: the layering itself is checked by the import-linter contracts
# (pyproject.toml); this test checks at run time that importing them loads no Redis client.
PURE_MODULES = sorted(
    "core." + info.name
    for info in pkgutil.iter_modules([str(Path(dcr_middleware.__file__).parent / "core")])
)


def run_python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    # A fresh interpreter: the only way to see what an import does to sys.modules. Start from an
    # environment without any DCR_* variable of the developer's shell, plus ``env``.
    base = {k: v for k, v in os.environ.items() if not k.startswith("DCR_")}
    return subprocess.run(
        [sys.executable, "-W", "error", "-W", "ignore:'cgi' is deprecated", "-c", code],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_public_api_all_is_pinned() -> None:
    assert dcr_middleware.__all__ == [
        "AsyncClientStore",
        "ClientStore",
        "ConfigurationError",
        "ConflictError",
        "DCRError",
        "DCRMiddleware",
        "DCRWSGIMiddleware",
        "InvalidClientError",
        "InvalidClientMetadataError",
        "InvalidRedirectURIError",
        "RegisteredClient",
        "Settings",
        "StorageError",
        "__version__",
        "authorization_server_metadata",
    ]


def test_public_api_every_name_is_defined() -> None:
    for name in dcr_middleware.__all__:
        assert getattr(dcr_middleware, name) is not None, name


def test_public_api_public_names_have_docstrings() -> None:
    for name in dcr_middleware.__all__:
        obj = getattr(dcr_middleware, name)
        if isinstance(obj, type):
            assert obj.__doc__, name


def test_public_api_import_reads_no_environment() -> None:
    poisoned = {"DCR_" + f.name.upper(): "abc{" for f in dataclasses.fields(Settings)}
    poisoned["DCR_APP"] = "no_such_module:app"
    poisoned["DCR_REDIS_URL"] = "redis://192.0.2.1:1/0"
    result = run_python(
        "import dcr_middleware, dcr_middleware.asgi, dcr_middleware.wsgi", **poisoned
    )
    assert result.returncode == 0, result.stderr


def test_public_api_poisoned_environment_fails_only_when_read() -> None:
    # The control for the test above: the same poison does fail once settings are built.
    result = run_python(
        "from dcr_middleware import Settings; Settings.from_env()", DCR_MAX_BODY_BYTES="abc"
    )
    assert result.returncode != 0
    assert "DCR_MAX_BODY_BYTES" in result.stderr


def test_public_api_pure_modules_do_not_import_redis() -> None:
    # Load the pure modules without running the package __init__ (which also loads the
    # adapters), so the check is about these modules alone.
    code = f"""
import importlib, importlib.util, sys, types
spec = importlib.util.find_spec("dcr_middleware")
package = types.ModuleType("dcr_middleware")
package.__path__ = list(spec.submodule_search_locations)
sys.modules["dcr_middleware"] = package
for name in {PURE_MODULES!r}:
    importlib.import_module("dcr_middleware." + name)
assert "dcr_middleware.asgi" not in sys.modules
leaked = sorted(m for m in sys.modules if m == "redis" or m.startswith("redis."))
assert not leaked, leaked
"""
    result = run_python(code)
    assert result.returncode == 0, result.stderr


def test_public_api_redis_check_can_fail() -> None:
    # The control for the test above: importing the Redis storage module is detected.
    result = run_python(
        "import sys, dcr_middleware.storage.redis\nassert 'redis' not in sys.modules"
    )
    assert result.returncode != 0
