"""Print the installed versions of the dependencies that compatibility runs are about."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

NAMES = (
    "redis",
    "hiredis",
    "starlette",
    "authlib",
    "joserfc",
    "webob",
    "uvicorn",
    "httpx",
    "mcp",
    "mypy",
)


def main() -> None:
    found = []
    for name in NAMES:
        try:
            found.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            found.append(f"{name} (not installed)")
    print("resolved: " + ", ".join(found))


if __name__ == "__main__":
    main()
