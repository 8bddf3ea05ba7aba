"""The package as users get it: ``python -m build`` makes an sdist and a wheel with the Lua
scripts and ``py.typed``, ``twine check`` accepts both, and the wheel, installed into a fresh
virtual environment away from the checkout, serves a registration.

The build uses uv as its installer when uv is found (``.tools/bin/uv``, then ``PATH``): it
takes setuptools from uv's cache, so the build works without a round trip to the index once the
cache is warm. The fresh venv installs the wheel's dependencies at the versions of ``uv.lock``.
"""

from __future__ import annotations

import email.parser
import os
import shutil
import subprocess
import sys
import tarfile
import time
import tomllib
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from support import CONFIDENTIAL, HOST, READY_TIMEOUT, free_port

import dcr_middleware

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "dcr_middleware"
LUA_SCRIPTS = sorted(p.name for p in (PACKAGE / "storage" / "lua").glob("*.lua"))
BUILD_TIMEOUT = 300


def _uv() -> str | None:
    local = ROOT / ".tools" / "bin" / "uv"
    return str(local) if local.exists() else shutil.which("uv")


@dataclass(frozen=True)
class Built:
    wheel: Path
    sdist: Path
    output: str  # what the build printed


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    out = tmp_path_factory.mktemp("dist")
    uv = _uv()
    installer = ["--installer", "uv"] if uv else []
    env = dict(os.environ)
    if uv:  # python -m build looks for uv on PATH
        env["PATH"] = os.pathsep.join([str(Path(uv).parent), env.get("PATH", "")])
    result = subprocess.run(
        [sys.executable, "-m", "build", *installer, "--outdir", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        env=env,
        timeout=BUILD_TIMEOUT,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    (wheel,) = out.glob("*.whl")
    (sdist,) = out.glob("*.tar.gz")
    return Built(wheel, sdist, output)


def _wheel_names(built: Built) -> list[str]:
    with zipfile.ZipFile(built.wheel) as wheel:
        return wheel.namelist()


def _sdist_names(built: Built) -> list[str]:
    with tarfile.open(built.sdist) as sdist:
        # Drop the "dcr_middleware-X.Y.Z/" root every member sits under.
        return [name.partition("/")[2] for name in sdist.getnames()]


def _wheel_metadata(built: Built) -> email.message.Message:
    with zipfile.ZipFile(built.wheel) as wheel:
        (name,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
        return email.parser.Parser().parsestr(wheel.read(name).decode("utf-8"))


def test_build_names_both_artifacts_after_the_version(built: Built) -> None:
    version = dcr_middleware.__version__
    assert built.wheel.name == f"dcr_middleware-{version}-py3-none-any.whl"
    assert built.sdist.name == f"dcr_middleware-{version}.tar.gz"


def test_build_prints_no_deprecation_of_the_license_table(built: Built) -> None:
    # setuptools >= 77 deprecates `license = { text = ... }` and license classifiers.
    assert "deprecated" not in built.output.lower(), built.output


def test_wheel_holds_the_lua_scripts_and_py_typed(built: Built) -> None:
    names = _wheel_names(built)
    assert LUA_SCRIPTS  # the glob found the scripts of the checkout
    for script in LUA_SCRIPTS:
        assert f"dcr_middleware/storage/lua/{script}" in names
    assert "dcr_middleware/py.typed" in names
    assert "dcr_middleware/integrations/authlib.py" in names
    assert "dcr_middleware/integrations/mcp/__init__.py" in names


def test_wheel_holds_only_the_package(built: Built) -> None:
    names = _wheel_names(built)
    outside = [n for n in names if n.split("/")[0] not in ("dcr_middleware", *_dist_info(names))]
    assert outside == []  # no tests/, examples/, benchmarks/, docs/
    assert not [n for n in names if "/tests/" in n or n.startswith("tests/")]


def _dist_info(names: list[str]) -> tuple[str, ...]:
    return tuple({n.split("/")[0] for n in names if n.split("/")[0].endswith(".dist-info")})


def test_sdist_holds_the_sources_the_wheel_is_built_from(built: Built) -> None:
    names = _sdist_names(built)
    for needed in ("pyproject.toml", "README.md", "dcr_middleware/py.typed"):
        assert needed in names
    for script in LUA_SCRIPTS:
        assert f"dcr_middleware/storage/lua/{script}" in names
    assert not [n for n in names if n.startswith("tests/")]


def test_metadata_has_one_version_and_an_spdx_license(built: Built) -> None:
    metadata = _wheel_metadata(built)
    assert metadata["Version"] == dcr_middleware.__version__
    assert metadata["License-Expression"] == "MIT"
    assert metadata["License"] is None  # the deprecated free-text field is gone
    assert "otel" in metadata.get_all("Provides-Extra", [])
    assert "metrics" in metadata.get_all("Provides-Extra", [])
    assert "mcp" in metadata.get_all("Provides-Extra", [])


def test_pyproject_reads_the_version_from_the_package() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
    assert "version" not in project["project"]
    assert project["project"]["dynamic"] == ["version"]
    attr = project["tool"]["setuptools"]["dynamic"]["version"]["attr"]
    assert attr == "dcr_middleware.__version__"


def test_twine_check_accepts_both_artifacts(built: Built) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", str(built.wheel), str(built.sdist)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("PASSED") == 2, result.stdout


# -- the wheel in a fresh virtual environment --------------------------------------------------


def _locked_versions() -> str:
    """``name==version`` of every package in uv.lock (but the project): pip constraints."""
    lock = tomllib.loads((ROOT / "uv.lock").read_text("utf-8"))
    return "".join(
        f"{p['name']}=={p['version']}\n"
        for p in lock["package"]
        if p["name"] != "dcr-middleware" and "version" in p
    )


@pytest.fixture(scope="module")
def fresh_venv(built: Built, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new venv (away from the checkout) with the wheel and its ``demo`` extra installed."""
    home = tmp_path_factory.mktemp("fresh")
    venv = home / "venv"
    constraints = home / "constraints.txt"
    constraints.write_text(_locked_versions(), "utf-8")
    requirement = f"dcr-middleware[demo] @ {built.wheel.as_uri()}"
    uv = _uv()
    if uv:
        commands = [
            [uv, "venv", "--quiet", "--python", sys.executable, str(venv)],
            [uv, "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"),
             "-c", str(constraints), requirement],
        ]  # fmt: skip
    else:
        commands = [
            [sys.executable, "-m", "venv", str(venv)],
            [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
             "-c", str(constraints), requirement],
        ]  # fmt: skip
    for command in commands:
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=BUILD_TIMEOUT, check=False, cwd=home
        )
        assert result.returncode == 0, result.stdout + result.stderr
    return venv


def _clean_env() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DCR_", "PYTHON", "VIRTUAL_ENV", "UV_"))
    }
    env["PYTHONUNBUFFERED"] = "1"
    return env


def test_fresh_venv_imports_the_installed_wheel_not_the_checkout(fresh_venv: Path) -> None:
    result = subprocess.run(
        [
            str(fresh_venv / "bin" / "python"),
            "-c",
            "import dcr_middleware, importlib.metadata as m;"
            "print(dcr_middleware.__file__); print(m.version('dcr-middleware'));"
            "print(dcr_middleware.__version__)",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=fresh_venv.parent,
        env=_clean_env(),
    )
    assert result.returncode == 0, result.stderr
    location, installed, attribute = result.stdout.split()
    assert Path(location).is_relative_to(fresh_venv)
    assert installed == attribute == dcr_middleware.__version__


@pytest.fixture
def served(fresh_venv: Path, tmp_path: Path) -> Iterator[str]:
    """``dcr-middleware serve`` from the fresh venv (embedded store) on a free loopback port."""
    port = free_port()
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(fresh_venv / "bin" / "dcr-middleware"), "serve", "--host", HOST,
             "--port", str(port)],
            cwd=tmp_path,
            env=_clean_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            url = f"http://{HOST}:{port}"
            _wait_ready(url, process, log_path)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def _wait_ready(url: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"serve exited {process.returncode}:\n{log_path.read_text()}")
        try:
            if httpx.get(url + "/", timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"serve not ready in time:\n{log_path.read_text()}")
        time.sleep(0.1)


@pytest.mark.server
def test_fresh_venv_wheel_serves_a_registration(served: str) -> None:
    response = httpx.post(served + "/register", json=CONFIDENTIAL, timeout=10.0)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["redirect_uris"] == CONFIDENTIAL["redirect_uris"]
    assert body["client_id"] and body["client_secret"]
