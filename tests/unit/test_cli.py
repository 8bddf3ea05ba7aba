"""The ``dcr-middleware`` parser: ``--version``, ``serve --log-level`` choices, and the logging
configuration ``serve`` installs (the demo's own log lines are in tests/integration)."""

from __future__ import annotations

import logging
import logging.config

import pytest

import dcr_middleware
from dcr_middleware import cli


def test_cli_version_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"dcr-middleware {dcr_middleware.__version__}\n"


@pytest.mark.parametrize("level", ["verbose", "warn", "10", ""])
def test_cli_serve_log_level_refuses_an_unknown_level(
    level: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.build_parser().parse_args(["serve", "--log-level", level])
    assert exited.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


@pytest.mark.parametrize("level", cli.LOG_LEVELS)
def test_cli_serve_log_level_accepts_uvicorn_levels(level: str) -> None:
    args = cli.build_parser().parse_args(["serve", "--log-level", level.upper()])
    assert args.log_level == level


@pytest.mark.parametrize(("level", "expected"), [("info", "INFO"), ("trace", "DEBUG")])
def test_cli_serve_logging_formats_the_library_logger(level: str, expected: str) -> None:
    config = cli.serve_logging(level)
    for name in ("dcr_middleware", "py.warnings"):
        logger = config["loggers"][name]
        assert logger["level"] == expected
        assert config["handlers"][logger["handlers"][0]]["formatter"] == "readable"
    assert config["formatters"]["readable"]["format"] == cli.LOG_FORMAT
    assert "uvicorn.access" in config["loggers"]  # uvicorn's own configuration is kept
    formatter = logging.Formatter(cli.LOG_FORMAT)
    record = logging.LogRecord(
        "dcr_middleware", logging.INFO, "x", 1, "client registered", (), None
    )
    line = formatter.format(record)
    assert line.endswith("INFO     dcr_middleware: client registered")
    assert line[:4].isdigit()  # starts with the time
