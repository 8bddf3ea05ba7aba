#!/usr/bin/env bash
# Install dcr-middleware with the demo server into .venv (from uv.lock) and serve the demo on
# http://127.0.0.1:8000 (embedded store; set DCR_REDIS_URL=redis://... to use Redis).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_bootstrap.sh
# --inexact: keeps whatever else .venv holds (the test toolchain, if scripts/test.sh ran).
ensure_venv --extra demo --no-default-groups --inexact
exec .venv/bin/dcr-middleware serve "$@"
