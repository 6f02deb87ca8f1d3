"""Deployments and schedules: the checks ``charter schedule`` makes before it serves a flow.

A deployment that registers fine and then fails at 2 a.m. because its cron expression was
misread, its time zone misspelt or a parameter mistyped costs a night of data. Everything
here runs before Prefect is contacted, and every message names the part that is wrong.
The cron check delegates to the validator Prefect's API applies, so charter accepts
exactly what the server accepts; it only adds which field is wrong.
"""

from __future__ import annotations

import asyncio
import json
import zoneinfo
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from tasks.core.errors import CharterError

# The flows ``charter schedule --flow NAME`` can serve, by their Prefect flow name, as
# importable ``module.function`` paths (the package is installed, so a served run finds the
# flow from any working directory). prefect.yaml names the same functions by file path.
FLOWS: dict[str, str] = {
    "pipeline": "flows.pipeline.pipeline",
    "ingest": "flows.ingest.ingest",
    "generate": "flows.generate.generate",
    "critique": "flows.critique.critique",
    "label": "flows.label.label",
    "merge": "flows.merge.merge",
    "train-reward": "flows.train.train_reward",
    "train-dpo": "flows.train.train_dpo",
    "train-sft": "flows.train.train_sft",
    "train-ppo": "flows.train.train_ppo",
    "train-grpo": "flows.train.train_grpo",
    "evaluate": "flows.train.evaluate_policy",
    "compare": "flows.compare.compare_policies",
}

# The five fields of a cron expression, in order, and the values each accepts.
CRON_FIELDS: tuple[tuple[str, str], ...] = (
    ("minute", "0-59"),
    ("hour", "0-23"),
    ("day of month", "1-31"),
    ("month", "1-12 or jan-dec"),
    ("day of week", "0-6 (0 or 7 is Sunday) or sun-sat"),
)


def check_cron(expression: str) -> str:
    """The expression, normalised to single spaces, or a :class:`CharterError` naming the bad field.

    Five fields only: croniter would read a sixth as seconds, which a nightly data job never
    means. Each field is checked alone (the others set to ``*``) so the message can say which
    one is wrong; then the whole expression, for what only the combination can break.
    """
    from prefect._internal.schemas.validators import validate_cron_string

    fields = expression.split()
    if len(fields) != len(CRON_FIELDS):
        names = ", ".join(name for name, _ in CRON_FIELDS)
        raise CharterError(
            f"cron {expression!r} has {len(fields)} fields; a cron expression has 5: {names} "
            "(e.g. '0 2 * * *' is every day at 02:00)"
        )
    for position, (name, allowed) in enumerate(CRON_FIELDS):
        probe = ["*"] * len(CRON_FIELDS)
        probe[position] = fields[position]
        try:
            validate_cron_string(" ".join(probe))
        except ValueError:
            raise CharterError(
                f"cron {expression!r}: the {name} field (field {position + 1}) {fields[position]!r} "
                f"is not valid; it takes {allowed}, lists (1,15), ranges (1-5) and steps (*/10)"
            ) from None
    normalised = " ".join(fields)
    try:
        validate_cron_string(normalised)
    except ValueError as exc:
        raise CharterError(f"cron {expression!r}: {exc}") from None
    return normalised


def check_timezone(name: str) -> str:
    """The IANA time zone name, or an error: Prefect would otherwise reject it only at registration."""
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise CharterError(
            f"unknown time zone {name!r}: use an IANA name such as UTC, Europe/Amsterdam or America/New_York"
        ) from None
    return name


def next_run_times(cron: str, timezone: str, count: int = 3, after: datetime | None = None) -> list[datetime]:
    """The next ``count`` times the schedule fires, computed by the Prefect server's own schedule model.

    Using the server's model (not croniter directly) keeps daylight-saving transitions exactly
    as the scheduler will handle them.
    """
    from prefect.server.schemas.schedules import CronSchedule

    schedule = CronSchedule(cron=cron, timezone=timezone)
    return list(asyncio.run(schedule.get_dates(n=count, start=after)))


def parse_params(items: Sequence[str], string_params: Collection[str] = ()) -> dict[str, Any]:
    """``key=value`` options into deployment parameters.

    A value is read as JSON when it parses (``n=4``, ``stages=["generate","label"]``,
    ``label_files=[{"path": "x.jsonl"}]``) and kept as text otherwise, except for parameters
    in ``string_params`` (annotated ``str``), which always stay text: a store named ``2024``
    must not become the number 2024.
    """
    params: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise CharterError(f"--param {item!r}: expected key=value (e.g. --param store=./store)")
        if key in params:
            raise CharterError(f"--param {key} given twice")
        params[key] = raw if key in string_params else _json_or_text(raw)
    return params


def _json_or_text(raw: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def flow_path(name: str) -> str:
    """The import path of a schedulable flow, or an error listing the names there are."""
    try:
        return FLOWS[name]
    except KeyError:
        raise CharterError(f"unknown --flow {name!r}; flows: {', '.join(FLOWS)}") from None
