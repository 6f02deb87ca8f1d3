"""Turning query results and reports into terminal tables, CSV or JSON."""

from __future__ import annotations

import csv
import io
import json
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from rich.console import Console
from rich.table import Table

from tasks.store.sql import QueryResult

OUTPUT_FORMATS = ("table", "csv", "json")


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value


def to_csv(result: QueryResult) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(result.columns)
    for row in result.rows:
        writer.writerow(["" if v is None else _plain(v) for v in row])
    return buffer.getvalue()


def to_json(result: QueryResult) -> str:
    records = [{k: _plain(v) for k, v in record.items()} for record in result.records()]
    return json.dumps(records, ensure_ascii=False, indent=2, default=str)


def rich_table(result: QueryResult, title: str | None = None, max_width: int = 60) -> Table:
    table = Table(title=title, title_justify="left", show_lines=False)
    for column in result.columns:
        table.add_column(column, overflow="fold", max_width=max_width)
    for row in result.rows:
        table.add_row(*[_cell(v, max_width) for v in row])
    return table


def _cell(value: Any, max_width: int) -> str:
    if value is None:
        return "[dim]NULL[/dim]"
    text = str(_plain(value)).replace("\n", " ")
    text = text if len(text) <= max_width * 2 else text[: max_width * 2 - 1] + "…"
    return text.replace("[", r"\[")


def print_result(result: QueryResult, fmt: str, console: Console) -> None:
    if fmt == "csv":
        console.file.write(to_csv(result))
    elif fmt == "json":
        console.file.write(to_json(result) + "\n")
    else:
        console.print(rich_table(result))
        console.print(f"[dim]{len(result.rows)} row(s)[/dim]")


def records_table(records: list[dict[str, Any]], title: str) -> Table:
    columns = list(records[0]) if records else []
    rows = [tuple(round(v, 4) if isinstance(v, float) else v for v in r.values()) for r in records]
    return rich_table(QueryResult(columns, rows), title=title, max_width=40)


def print_scoreboard(report: dict[str, Any], console: Console) -> None:
    """The behaviour scoreboard: per family, per rule, win rates, and the length warning."""
    console.print(records_table(report["families"], f"Behaviour on {report['prompts']} held-out prompts"))
    console.print(records_table(report["principles"], "Rule pass rate per principle/rule"))
    if report["win_rates"]:
        console.print(records_table(report["win_rates"], "Tuned vs base win rate"))
    check = report["length_check"]
    if check and check["warning"]:
        console.print(f"[yellow]warning:[/yellow] {check['warning']}")
    elif check:
        console.print(
            f"[dim]reward gain {check['reward_gain']:.3f}, length gain {check['length_gain']:.1f} words: "
            "no sign that length drives the reward[/dim]"
        )
