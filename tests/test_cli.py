"""The CLI contract: help text everywhere, exit codes, the one error handler."""

from __future__ import annotations

from typing import Any

import pytest
import typer

from mlops import __version__
from mlops.cli import app
from mlops.errors import DataInvalid
from tests.helpers import runner


def _walk(cmd: Any, path: str = "mlops") -> list[tuple[str, Any]]:
    out = [(path, cmd)]
    for name, sub in (getattr(cmd, "commands", None) or {}).items():
        out += _walk(sub, f"{path} {name}")
    return out


def test_every_command_and_option_has_help() -> None:
    root = typer.main.get_command(app)
    missing = []
    commands = _walk(root)
    assert len(commands) >= 3
    for path, cmd in commands:
        if not (cmd.help or cmd.short_help):
            missing.append(f"{path}: command")
        for param in cmd.params:
            if param.param_type_name == "option" and not getattr(param, "help", None):
                missing.append(f"{path}: option {'/'.join(param.opts)}")
            if param.param_type_name == "argument" and not getattr(param, "help", None):
                missing.append(f"{path}: argument {param.name}")
    assert missing == []


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"mlops {__version__}"


def test_usage_error_is_exit_2() -> None:
    result = runner.invoke(app, ["stage"])
    assert result.exit_code == 2


def test_unknown_command_is_exit_2() -> None:
    assert runner.invoke(app, ["frobnicate"]).exit_code == 2


def test_expected_error_is_exit_1(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*_a: Any, **_k: Any) -> None:
        raise DataInvalid("data.csv: column 'x' is missing", hint="add it")

    monkeypatch.setattr("mlops.jobs.pipeline.run_stage", boom)
    result = runner.invoke(app, ["stage", "prepare"])
    assert result.exit_code == 1
    assert result.output.splitlines() == ["error: data.csv: column 'x' is missing", "hint: add it"]


def test_bug_is_exit_3_with_report_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    def bug(*_a: Any, **_k: Any) -> None:
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr("mlops.jobs.pipeline.run_stage", bug)
    result = runner.invoke(app, ["stage", "prepare"])
    assert result.exit_code == 3
    assert "internal error: ZeroDivisionError" in result.output
    assert "--traceback" in result.output
    assert "Traceback (most recent call last)" not in result.output


def test_traceback_flag_shows_it(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def bug(*_a: Any, **_k: Any) -> None:
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr("mlops.jobs.pipeline.run_stage", bug)
    monkeypatch.setattr("mlops.cli.state.traceback", False)
    result = runner.invoke(app, ["--traceback", "stage", "prepare"])
    assert result.exit_code == 3
    assert "Traceback (most recent call last)" in result.output + capsys.readouterr().err


def test_interrupt_is_exit_130(monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(*_a: Any, **_k: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("mlops.jobs.pipeline.run_stage", interrupted)
    assert runner.invoke(app, ["stage", "prepare"]).exit_code == 130


def test_python_dash_m_entry_point() -> None:
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "mlops", "--version"], capture_output=True, text=True, check=False)
    assert proc.returncode == 0 and proc.stdout.strip() == f"mlops {__version__}"


def test_bug_message_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    def bug(*_a: Any, **_k: Any) -> None:
        raise RuntimeError("first line\n[bt] frame 1\n[bt] frame 2")

    monkeypatch.setattr("mlops.jobs.pipeline.run_stage", bug)
    result = runner.invoke(app, ["stage", "prepare"])
    assert result.exit_code == 3
    assert "error: internal error: RuntimeError: first line\n" in result.output
    assert "[bt]" not in result.output


def test_bad_parameter_inside_a_command_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def bad(*_a: Any, **_k: Any) -> None:
        raise typer.BadParameter("must be one of a, b")

    monkeypatch.setattr("mlops.jobs.pipeline.run_stage", bad)
    result = runner.invoke(app, ["stage", "prepare"])
    assert result.exit_code == 2
    assert "internal error" not in result.output
