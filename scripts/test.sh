#!/usr/bin/env bash
# Install everything the test suite needs (Debian's redis-server and chromium included) and run
# it: linters, the type checker, the strict docs build, then pytest. The Redis servers are started
# by the test fixtures.
# Extra arguments go to pytest (e.g. bash scripts/test.sh tests/unit -x).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_bootstrap.sh
missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v redis-cli >/dev/null || missing+=(redis-tools)
# Headless Chromium runs the browser CORS test (tests/integration/test_browser_cors.py).
command -v chromium >/dev/null || missing+=(chromium)
apt_install "${missing[@]}"
ensure_venv test
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy --strict dcr_middleware
# The docs site (mkdocs-material + mkdocstrings) must build in strict mode: broken links, anchors
# or API references fail here. Built outside the tree and thrown away. No --quiet: it hides the
# warnings that --strict counts, and the build then passes whatever they say.
docs_site=$(mktemp -d)
NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict -d "$docs_site"
rm -rf "$docs_site"
# pytest exits 5 when it collected no test: with `set -e` that fails this script, as it should.
.venv/bin/python -m pytest "$@"
