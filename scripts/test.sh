#!/usr/bin/env bash
# Install everything the test suite needs and run it: linters, the type checker, the import
# contracts, the strict docs build, then pytest. The toolchain and the test-time dependencies
# come from uv.lock; the Redis servers and application servers are started by the test fixtures.
#
#   bash scripts/test.sh            the whole suite, from the lock (what CI runs)
#   bash scripts/test.sh --quick    lint, types, contracts and the tests that start no server
#                                   and no Redis (the development loop, under a minute)
#   bash scripts/test.sh --latest   the whole suite on the newest release of every dependency,
#                                   ignoring the lock (.venv-latest)
#   bash scripts/test.sh --lowest   the whole suite on the lowest versions that pyproject.toml
#                                   declares for the runtime dependencies (.venv-lowest); the
#                                   toolchain keeps its locked versions; mypy is skipped
#
# --quick combines with --latest or --lowest. Further arguments go to pytest
# (e.g. bash scripts/test.sh --quick tests/unit -x).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_bootstrap.sh

quick=false
resolution=locked
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=true ;;
    --latest | --lowest) resolution=${1#--} ;;
    *) break ;;
  esac
  shift
done

if ! $quick; then
  missing=()
  command -v redis-server >/dev/null || missing+=(redis-server)
  command -v redis-cli >/dev/null || missing+=(redis-tools)
  # Headless Chromium runs the browser CORS test (tests/integration/test_browser_cors.py).
  command -v chromium >/dev/null || missing+=(chromium)
  apt_install "${missing[@]}"
fi

extras=(hiredis server metrics docs otel cimd mcp)
case "$resolution" in
  locked)
    ensure_venv --all-extras
    venv=.venv
    ;;
  latest | lowest)
    check_python
    ensure_uv
    venv=.venv-$resolution
    "$UV" venv --quiet --allow-existing --python "$PYTHON" "$venv"
    spec=".[$(IFS=,; echo "${extras[*]}")]"
    if [ "$resolution" = latest ]; then
      # Newest releases of everything, the toolchain included: upstream breakage shows up here.
      "$UV" pip install --quiet --python "$venv/bin/python" --refresh --upgrade \
        -e "$spec" --group dev
    else
      # Lowest declared runtime versions; the toolchain pinned to the lock's versions so that
      # only the library's own ranges are under test.
      pins=$(mktemp)
      "$venv/bin/python" scripts/lock_pins.py uv.lock >"$pins"
      "$UV" pip install --quiet --python "$venv/bin/python" --reinstall \
        --resolution lowest-direct -e "$spec" --group dev -c "$pins"
      rm -f "$pins"
    fi
    "$venv/bin/python" scripts/versions.py
    ;;
esac

bin=$venv/bin
"$bin/ruff" check .
"$bin/ruff" format --check .
if [ "$resolution" = lowest ]; then
  # The oldest releases' annotations are not the ones the code is typed against (redis-py 6
  # typed far less): --lowest is about runtime behaviour, mypy runs on the locked and newest.
  echo "--lowest: mypy skipped (typing is checked against the locked and the newest releases)"
else
  "$bin/mypy" --strict dcr_middleware
fi
"$bin/lint-imports" --no-cache
if $quick; then
  # pytest exits 5 when it collected no test: with `set -e` that fails this script, as it should.
  exec "$bin/python" -m pytest -m "not redis and not server and not slow" "$@"
fi
# The docs site (mkdocs-material + mkdocstrings) must build in strict mode: broken links, anchors
# or API references fail here. Built outside the tree and thrown away. No --quiet: it hides the
# warnings that --strict counts, and the build then passes whatever they say.
docs_site=$(mktemp -d)
NO_MKDOCS_2_WARNING=1 "$bin/mkdocs" build --strict -d "$docs_site"
rm -rf "$docs_site"
exec "$bin/python" -m pytest "$@"
