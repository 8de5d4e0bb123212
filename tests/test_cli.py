"""The CLI contract: help text everywhere, exit codes, the one error handler."""

from __future__ import annotations

from pathlib import Path
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


def test_every_command_is_wrapped_by_the_one_error_handler() -> None:
    """A command without `@handled` would show users a traceback (exit 1) instead of a one-line error."""
    root = typer.main.get_command(app)
    leaves = [(path, cmd) for path, cmd in _walk(root) if not getattr(cmd, "commands", None)]
    assert len(leaves) >= 9
    unwrapped = [path for path, cmd in leaves if not getattr(cmd.callback, "__mlops_handled__", False)]
    assert unwrapped == []


def test_jobs_and_capabilities_never_read_the_actions_environment() -> None:
    """The GitHub Actions context is read in one place (mlops/github/context.py) and passed in as a value."""
    pkg = Path(__file__).resolve().parents[1] / "mlops"
    offenders = []
    for path in sorted(pkg.rglob("*.py")):
        rel = path.relative_to(pkg).as_posix()
        if rel.startswith("cli/") or rel in ("github/context.py", "git.py", "dvc.py"):
            continue  # the CLI builds the context; git/dvc pass the environment through to their subprocesses
        for n, line in enumerate(path.read_text().splitlines(), 1):
            names_ci = any(k in line for k in ("GITHUB_", "MLOPS_PR_NUMBER", "MLOPS_COMMENT_AUTHOR"))
            if names_ci and ("environ" in line or "getenv" in line):
                offenders.append(f"{rel}:{n}: {line.strip()}")
    assert offenders == []


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

    monkeypatch.setattr("mlops.jobs.stage.run_stage", boom)
    result = runner.invoke(app, ["stage", "prepare"])
    assert result.exit_code == 1
    assert result.output.splitlines() == ["error: data.csv: column 'x' is missing", "hint: add it"]


def test_bug_is_exit_3_with_report_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    def bug(*_a: Any, **_k: Any) -> None:
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr("mlops.jobs.stage.run_stage", bug)
    result = runner.invoke(app, ["stage", "prepare"])
    assert result.exit_code == 3
    assert "internal error: ZeroDivisionError" in result.output
    assert "--traceback" in result.output
    assert "Traceback (most recent call last)" not in result.output


def test_traceback_flag_shows_it(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def bug(*_a: Any, **_k: Any) -> None:
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr("mlops.jobs.stage.run_stage", bug)
    monkeypatch.setattr("mlops.cli.state.traceback", False)
    result = runner.invoke(app, ["--traceback", "stage", "prepare"])
    assert result.exit_code == 3
    assert "Traceback (most recent call last)" in result.output + capsys.readouterr().err


def test_interrupt_is_exit_130(monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(*_a: Any, **_k: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("mlops.jobs.stage.run_stage", interrupted)
    assert runner.invoke(app, ["stage", "prepare"]).exit_code == 130


def test_python_dash_m_entry_point() -> None:
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "mlops", "--version"], capture_output=True, text=True, check=False)
    assert proc.returncode == 0 and proc.stdout.strip() == f"mlops {__version__}"


def test_bug_message_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    def bug(*_a: Any, **_k: Any) -> None:
        raise RuntimeError("first line\n[bt] frame 1\n[bt] frame 2")

    monkeypatch.setattr("mlops.jobs.stage.run_stage", bug)
    result = runner.invoke(app, ["stage", "prepare"])
    assert result.exit_code == 3
    assert "error: internal error: RuntimeError: first line\n" in result.output
    assert "[bt]" not in result.output


def test_bad_parameter_inside_a_command_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def bad(*_a: Any, **_k: Any) -> None:
        raise typer.BadParameter("must be one of a, b")

    monkeypatch.setattr("mlops.jobs.stage.run_stage", bad)
    result = runner.invoke(app, ["stage", "prepare"])
    assert result.exit_code == 2
    assert "internal error" not in result.output


def test_every_package_and_module_is_in_the_layer_contracts() -> None:
    """A new capability or infrastructure module outside the contracts would be free to import anything."""
    import tomllib

    root = Path(__file__).resolve().parents[1]
    config = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    layers = next(c for c in config if c["type"] == "layers")["layers"]
    named = {m.strip() for layer in layers for m in layer.replace(":", "|").split("|")}
    forbidden = set(next(c for c in config if c["type"] == "forbidden")["source_modules"])
    found = {f"mlops.{p.stem if p.is_file() else p.name}" for p in (root / "mlops").iterdir()
             if (p.suffix == ".py" and p.stem not in ("__init__", "__main__")) or (p / "__init__.py").is_file()}
    assert found - named == set()
    assert found - forbidden == {"mlops.cli"}


def test_git_keeps_config_from_the_environment_and_drops_leaked_repository_variables(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The setup action passes the push token as GIT_CONFIG_COUNT/KEY_n/VALUE_n (never written to .git/config);
    a hook's GIT_DIR or GIT_INDEX_FILE must not point our calls at another repository."""
    from mlops.git import clean_env

    monkeypatch.setenv("GIT_CONFIG_COUNT", "1")
    monkeypatch.setenv("GIT_CONFIG_KEY_0", "http.https://github.com/.extraheader")
    monkeypatch.setenv("GIT_CONFIG_VALUE_0", "AUTHORIZATION: basic xyz")
    monkeypatch.setenv("GIT_DIR", "/elsewhere/.git")
    monkeypatch.setenv("GIT_INDEX_FILE", "/elsewhere/index")
    monkeypatch.setenv("GIT_CONFIG_PARAMETERS", "'core.hooksPath'='/tmp/evil'")
    env = clean_env()
    assert env["GIT_CONFIG_COUNT"] == "1" and env["GIT_CONFIG_KEY_0"].startswith("http.")
    assert "GIT_CONFIG_VALUE_0" in env
    assert not {"GIT_DIR", "GIT_INDEX_FILE", "GIT_CONFIG_PARAMETERS"} & set(env)
