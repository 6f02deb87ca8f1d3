"""The ``charter`` command line: one Typer app over the command groups in this package.

Commands that change the store run as Prefect flows (ephemeral mode unless
``PREFECT_API_URL`` points at a server); their inputs are validated first, so a bad
file fails in a second with its line and field, before Prefect starts. Read-only
commands (``sql``, ``audit``, ``constitution``) are plain functions and answer at once.
Settings options are made from the stages' settings models (:mod:`flows.cli.options`).
"""

from __future__ import annotations

import sys

import typer
from pydantic import ValidationError
from rich.text import Text

from flows.cli.commands import LazyCommands
from flows.cli.console import err
from tasks.core.errors import CharterError
from tasks.orchestration.stopping import Stopped

app = typer.Typer(
    name="charter",
    help="Constitutional and AI-feedback preference data: principles, labels, audits.",
    # Each command's module is imported only when that command runs, and the listing is Click's
    # plain help: Typer's rich help imports rich's Markdown stack (~0.15 s) for a list of names.
    cls=LazyCommands,
    rich_markup_mode=None,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def charter() -> None:
    """No options of its own: a callback makes Typer build the group that lists the commands."""


def main() -> None:
    """Entry point: user errors print as messages, not tracebacks, and exit 1; a stop exits 130/143.

    Flow commands stop on SIGINT and SIGTERM (:mod:`tasks.orchestration.stopping`, installed by
    :func:`flows.cli.common.prefect_environment`): the run is recorded cancelled on the way here.
    """
    try:
        app()
    except Stopped as stop:
        err.print(f"{stop}; run the same command again to resume where it stopped")
        sys.exit(stop.exit_code)
    except CharterError as exc:
        err.print(Text.assemble(("error: ", "red"), str(exc)), highlight=False)
        sys.exit(1)
    except ValidationError as exc:
        # Settings checked by a model the options do not build (a label file's, say).
        for problem in exc.errors():
            where = ".".join(str(part) for part in problem["loc"])
            err.print(Text.assemble(("error: ", "red"), f"{where}: {problem['msg']}"), highlight=False)
        sys.exit(1)
