# Shared by scripts/demo.sh and scripts/test.sh: make sure Debian packages, the locking tool (uv,
# pinned with hashes in scripts/requirements-uv.txt) and the project's virtual environment exist.
# Sourced, not run.

PYTHON=${PYTHON:-python3}
# uv must use this Python, never download one, and stay quiet about its own updates.
export UV_PYTHON_DOWNLOADS=never UV_NO_PROGRESS=1

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# apt_install PACKAGE... : install Debian packages that are missing.
apt_install() {
  [ $# -gt 0 ] || return 0
  echo "installing Debian packages: $*" >&2
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

check_python() {
  if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "dcr-middleware needs Python >= 3.11 (set PYTHON=/path/to/python3.11)" >&2
    return 1
  fi
}

# ensure_uv : set $UV to a uv of the pinned version, installing it into .tools/ when needed.
ensure_uv() {
  local want
  want=$(sed -n 's/^uv==\([0-9.]*\).*/\1/p' scripts/requirements-uv.txt)
  if [ -x .tools/bin/uv ] && [ "$(.tools/bin/uv --version | cut -d' ' -f2)" = "$want" ]; then
    UV=.tools/bin/uv
    return
  fi
  check_python
  "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null || apt_install python3-venv
  rm -rf .tools
  "$PYTHON" -m venv .tools
  .tools/bin/python -m pip install -q --disable-pip-version-check --require-hashes \
    -r scripts/requirements-uv.txt
  UV=.tools/bin/uv
}

# ensure_venv UV_SYNC_ARGS... : .venv with exactly the locked versions (uv sync --locked fails,
# rather than re-resolving, when uv.lock no longer matches pyproject.toml).
ensure_venv() {
  check_python
  ensure_uv
  "$UV" sync --locked --python "$PYTHON" --quiet "$@"
}
