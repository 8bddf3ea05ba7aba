"""Print ``name==version`` for the toolchain packages in uv.lock, as a pip constraints file.

``scripts/test.sh --lowest`` installs the runtime dependencies at their lowest declared versions
but keeps the linters, the type checker and the test runner at the versions the lock chose.
"""

from __future__ import annotations

import sys
import tomllib

TOOLCHAIN = {"ruff", "mypy", "pytest", "pytest-timeout", "hypothesis", "import-linter"}


def main(path: str) -> None:
    with open(path, "rb") as file:
        lock = tomllib.load(file)
    for package in lock["package"]:
        if package["name"] in TOOLCHAIN:
            print(f"{package['name']}=={package['version']}")


if __name__ == "__main__":
    main(sys.argv[1])
