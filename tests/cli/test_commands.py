"""The lazy command list against the commands themselves: same names, same summaries, and a
listing or a query that does not import what other commands need."""

from __future__ import annotations

import importlib
import os
import pkgutil
import subprocess
import sys

import pytest
import typer

import flows.cli
from flows.cli.commands import COMMANDS, load

# What the read-only commands must not import: the pipeline's stacks (seconds, not milliseconds).
HEAVY = ("torch", "transformers", "prefect", "vllm", "pandas", "tasks.backends.settings")


def defined_commands() -> dict[str, str]:
    """Every top-level command the CLI modules define (name: the module's app variable)."""
    found: dict[str, str] = {}
    for module_info in pkgutil.iter_modules(flows.cli.__path__):
        module = importlib.import_module(f"flows.cli.{module_info.name}")
        for attribute, value in vars(module).items():
            if not isinstance(value, typer.Typer) or module_info.name == "entry":
                continue
            if value.info.name:  # a named group
                found[value.info.name] = f"{module.__name__}:{attribute}"
            else:
                for command in value.registered_commands:
                    name = command.name or command.callback.__name__.replace("_", "-")
                    found[name] = f"{module.__name__}:{attribute}"
    return found


def test_every_command_is_listed_where_it_is_defined() -> None:
    defined = defined_commands()
    listed = {name: f"{c.modules[0]}:{c.app}" for name, c in COMMANDS.items()}
    assert listed == defined


@pytest.mark.parametrize("name", list(COMMANDS))
def test_the_listed_summary_is_the_commands_own(name: str) -> None:
    command = load(name)
    assert command.name == name
    assert command.get_short_help_str(10_000) == COMMANDS[name].summary


def test_train_holds_the_commands_other_modules_add_to_it() -> None:
    assert {"reward", "sft", "dpo", "ppo", "grpo"} <= set(load("train").commands)


def imported_by(*arguments: str, env: dict[str, str] | None = None) -> set[str]:
    """The modules a fresh ``charter ARGUMENTS`` process has imported when it exits."""
    script = (
        "import sys, runpy\n"
        f"sys.argv = ['charter', *{list(arguments)!r}]\n"
        "from flows.cli.entry import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('\\n'.join(sorted(sys.modules)), file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=env)
    return set(done.stderr.split())


def test_the_listing_imports_no_command_module() -> None:
    modules = imported_by("--help")
    commands = {module for c in COMMANDS.values() for module in c.modules}
    assert not modules & commands
    assert "tasks.store.store" not in modules and "duckdb" not in modules


def test_a_query_imports_none_of_the_pipeline(store, tmp_path) -> None:
    query = ("sql", "select count(*) from prompts", "--store", str(store.root))
    env = {**os.environ, "CHARTER_CACHE": str(tmp_path / "cache")}
    imported_by(*query, env=env)  # builds the store's catalog (that imports Arrow's pandas glue)
    modules = imported_by(*query, env=env)
    assert "flows.cli.query" in modules and "duckdb" in modules  # it did run the query
    assert not modules & set(HEAVY)
    assert not any(
        module.startswith(("flows.cli.data", "flows.cli.stages", "flows.cli.common")) for module in modules
    )
