"""Where each ``charter`` command lives, so a process imports only the command it runs.

Importing every command group builds ~30 pydantic settings models and pulls in the store's
Arrow and DuckDB stack: most of a second before ``charter --help`` or ``charter sql`` could
answer. Here each command is a name, the module that defines it and the one line that
``charter --help`` lists; the module is imported when the command is run (or asked for its own
``--help``). The lines repeat the commands' own first help paragraphs, and
``tests/cli/test_commands.py`` checks that they agree and that every command is listed.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

import typer
import typer._click as click
from typer.core import TyperCommand, TyperGroup


@dataclass(frozen=True)
class Command:
    """A top-level command, or a group of commands (``group=True``: the app is the group's own)."""

    modules: tuple[str, ...]  # imported in order; the first defines ``app``, the rest add to it
    app: str
    summary: str
    group: bool = False


def _command(module: str, summary: str) -> Command:
    return Command((f"flows.cli.{module}",), "app", summary)


def _group(module: str, app: str, summary: str, *more: str) -> Command:
    return Command((f"flows.cli.{module}", *(f"flows.cli.{m}" for m in more)), app, summary, group=True)


COMMANDS: dict[str, Command] = {
    "ingest": _command("data", "Import constitutions, prompt sets and label files in one Prefect flow run."),
    "import-labels": _command(
        "data",
        "Import human pairwise labels (charter JSONL, hh-rlhf JSONL, Label Studio JSON, Argilla records, "
        "CSV, TRL preferences; Argilla and TRL also as a datasets folder).",
    ),
    "sql": _command(
        "query", "Query the store with DuckDB SQL, read-only, within --timeout and --memory-limit."
    ),
    "audit": _command(
        "query", "Summarise labels, coverage, human and AI-human agreement, judge biases and preference sets."
    ),
    "generate": _command(
        "stages", "Sample N candidate responses per prompt into the generations table (resumable)."
    ),
    "critique": _command(
        "stages",
        "Critique and revise generations against sampled principles into the critiques table (resumable).",
    ),
    "label": _command(
        "stages",
        "Label response pairs with the AI judge (both orders, soft labels) and the constitution's rules.",
    ),
    "merge": _command(
        "preferences",
        "Merge human and AI labels into a versioned preference set (content-hash id) under a policy.",
    ),
    "export": _command(
        "preferences",
        "Export for TRL: a merged preference set, or from critique chains the SFT set (prompt, final "
        "revision) or revision-over-original preferences.",
    ),
    "eval": _command(
        "training",
        "Behaviour scoreboard, tuned vs base per family: reward, rules, escalation, refusal, KL, wins; "
        "with --stress, also per stress type on a stress set, and its shadow zone.",
    ),
    "compare": _command(
        "compare",
        "Race policies and their bases on the same held-out prompts and seeds: scoreboard per candidate, "
        "win rates of each over each other (reward model, AI judge in both orders), KL to its base, and "
        "with --stress / --preferences the stress tables and preference accuracy.",
    ),
    "score": _command(
        "checkpoints",
        "Score responses to a prompt with a trained reward model (higher is better): per response the "
        "members' mean and spread, and for every two responses P(the first better) and its spread.",
    ),
    "lineage": _command(
        "checkpoints",
        "What made a checkpoint: run, base model, preference set, constitutions, label counts, metrics.",
    ),
    "run": _command(
        "pipeline",
        "The whole pipeline from one config: ingest, generate, critique, label, merge, train, evaluate.",
    ),
    "schedule": _command(
        "pipeline",
        "Serve a flow as a deployment on a Prefect server (PREFECT_API_URL): its runs execute here.",
    ),
    "constitution": _group(
        "constitution",
        "constitution_app",
        "Validate, show, diff and import constitution files, and measure an edit's impact.",
    ),
    "models": _group("models", "models_app", "Prepare and inspect the models charter loads."),
    "train": _group(
        "training", "train_app", "Train reward models and policies on preference sets.", "policy_training"
    ),
    "review": _group(
        "review",
        "review_app",
        "The review bench: people label the pairs the AI judge is least sure of, in the browser.",
    ),
    "store": _group("store", "store_app", "Check the store's files against their manifests; compact tables."),
    "stress": _group("stress", "stress_app", "Stress sets: edge cases the tuned model never trained on."),
}


def load(name: str) -> click.Command:
    """The real command ``name``: its modules imported, its Typer app turned into Click."""
    command = COMMANDS[name]
    modules = [importlib.import_module(module) for module in command.modules]
    group = typer.main.get_group(getattr(modules[0], command.app))
    if command.group:
        group.name = name
        return group
    return group.commands[name]


class LazyCommands(TyperGroup):
    """The top-level group: lists :data:`COMMANDS` by their summaries, loads one when it runs."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        for name, command in COMMANDS.items():
            self.add_command(TyperCommand(name, help=command.summary), name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Each command with its whole summary, wrapped (Click would cut it to one line)."""
        with formatter.section("Commands"):
            formatter.write_dl([(name, command.summary) for name, command in COMMANDS.items()])

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name, listed, rest = super().resolve_command(ctx, args)
        return name, (load(name) if listed is not None and name is not None else listed), rest
