"""The typer layer: parse arguments, call the library, format output, map errors to exit codes. Nothing else."""

from __future__ import annotations

import functools
import os
import sys
import traceback as tb
from collections.abc import Callable
from typing import Any, TypeVar

import typer

from mlops import __version__
from mlops.errors import GateFailed, MlopsError

BUG_URL = "https://github.com/mlops-toolkit/mlops/issues"

app = typer.Typer(
    name="mlops",
    help="GitOps, CI-native MLOps: reproduce the DVC pipeline, report on pull requests, promote by git tag.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


class _State:
    traceback = os.environ.get("MLOPS_TRACEBACK", "") not in ("", "0")
    verbose = False


state = _State()

F = TypeVar("F", bound=Callable[..., Any])


def echo(message: str = "", *, err: bool = False) -> None:
    typer.echo(message, err=err)


def progress(message: str) -> None:
    """Render library progress: plain lines (CI logs and terminals alike) on stderr."""
    typer.echo(message, err=True)


def handled(fn: F) -> F:
    """The one error handler: MlopsError -> 1, interrupt -> 130, anything else is a bug -> 3."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except MlopsError as exc:
            if state.traceback:
                tb.print_exc()
            if isinstance(exc, GateFailed) and exc.report is not None:
                from mlops.gates import render_table

                typer.echo(render_table(exc.report))  # the table on stdout, the one-line cause on stderr
            typer.echo(f"error: {exc.message}", err=True)
            if exc.hint:
                typer.echo(f"hint: {exc.hint}", err=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(130) from None
        except (typer.Exit, typer.Abort, typer.BadParameter):
            raise  # typer's own: Exit carries a code, usage errors exit 2
        except Exception as exc:
            if state.traceback:
                tb.print_exc()
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            typer.echo(f"error: internal error: {type(exc).__name__}: {first}", err=True)
            typer.echo(f"hint: this is a bug in mlops {__version__}; rerun with --traceback and report it at "
                       f"{BUG_URL}", err=True)
            raise typer.Exit(3) from None

    wrapper.__mlops_handled__ = True  # type: ignore[attr-defined]  # checked by a test over every command
    return wrapper  # type: ignore[return-value]


def ci_context() -> Any:
    """The GitHub Actions context of this process (read from the environment here, and only here)."""
    from mlops.github.context import CIContext

    return CIContext.from_env()


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mlops {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    traceback: bool = typer.Option(False, "--traceback", help="Show the Python traceback of an error (for bugs)."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Say more about what is skipped or ignored."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """GitOps, CI-native MLOps toolkit."""
    if traceback:
        state.traceback = True
    state.verbose = verbose


def _register() -> None:
    # Each capability's commands live in their own module; importing registers them on `app`.
    from mlops.cli import (  # noqa: F401
        check,
        deploy,
        init,
        monitor,
        package,
        pipeline,
        predict,
        registry,
        report,
        score,
        serve,
        sweep,
    )


_register()


def main() -> None:
    try:
        app(prog_name="mlops")
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)
