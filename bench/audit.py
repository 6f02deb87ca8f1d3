"""Benchmark: the audit views that read human labels, in DuckDB, at one or more sizes, against
the same computations in pandas.

One run per size (``--labels``, default 1,000,000; ``--labels 1000000 10000000`` for the two the
targets name), each on synthetic data generated with a fixed seed (``bench/audit_data.py``):

* importing N human labels with ``Store.append`` into a fresh temporary store, one append (one
  file) per million labels (rows/s; building each chunk's Arrow rows is not counted), then
  appending the same labels again: the dedupe path, which must add 0 rows;
* opening the read-only SQL session, ``tasks.store.sql.readonly_connection`` (the "catalog open");
* every audit view that reads human labels, through ``tasks.store.sql.execute`` (as ``charter
  sql`` runs it): the first run of the session ("cold", though the files just written are in the
  OS page cache) and the best of ``--repeats`` (default 3). A view whose result is one row per
  label, vote or pair (``ROW_VIEWS``) is timed as ``select count(*), bit_xor(hash(<every output
  column>)) from <view>``: the whole view is computed, and one row, not millions of Python
  tuples, comes back. The views over AI labels are left out: the benchmark writes none;
* ``human_agreement``, ``coverage_ledger`` and ``disagreements`` in pandas (``bench/audit_pandas.py``)
  from the stored Parquet files and from DataFrames already in memory, best of the same ``--repeats``.

It then checks that both sides computed the same thing (asserted) and prints, per view, the DuckDB
times and, where pandas computes it too, the speed-up. Targets are printed as PASS/MISS, never
asserted: each view under 1 s at 1,000,000 labels and under 2 s at 10,000,000 (a run at another
size prints no verdict), and DuckDB at least 10x faster than pandas. DuckDB uses every core;
pandas runs on one, as it does.

Run from the project root::

    .venv/bin/python bench/audit.py                                # 1,000,000 labels
    .venv/bin/python bench/audit.py --labels 1000000 10000000      # both targets
    .venv/bin/python bench/audit.py --labels 100000                # a quick run
    .venv/bin/python bench/audit.py --json audit.json              # also write the figures as JSON
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
from machine import write_figures  # bench/machine.py: this script's folder is on sys.path

try:
    from tasks.store.sql import QueryResult, execute, readonly_connection
except ImportError:  # not installed: run from a checkout
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tasks.store.sql import QueryResult, execute, readonly_connection
from audit_data import ANNOTATORS, FAMILIES, SEED, Dataset, label_chunk, make_dataset
from audit_pandas import PANDAS_QUERIES, Frames, cross_check, load_frames

from tasks.store.store import Store
from tasks.store.view_files import audit_views

T = TypeVar("T")

DEFAULT_LABELS = (1_000_000,)
REPEATS = 3
RUN_ID = "bench-audit"

# The views of the README's "Audit views" that read human labels (directly or through human_votes,
# human_majority or label_votes), in the README's order; the AI-label views are left out.
TIMED_VIEWS = (
    "labels",
    "label_votes",
    "label_counts",
    "coverage_ledger",
    "human_votes",
    "human_agreement",
    "disagreements",
    "disagreement_bench",
    "human_majority",
    "human_position_bias",
    "length_bias",
    "stage_counts",
)
ROW_VIEWS = frozenset({"labels", "label_votes", "human_votes", "disagreement_bench", "human_majority"})
TARGET_SECONDS = {1_000_000: 1.0, 10_000_000: 2.0}  # labels -> every view's best time under this
TARGET_SPEEDUP = 10.0


def view_query(view: str) -> str:
    """What is timed for ``view``: the view itself, or for a row view one hash over every output
    column of every row (``count(column)`` would not do: DuckDB answers it from Parquet statistics)."""
    if view not in ROW_VIEWS:
        return f"select * from {view}"
    columns = next(v.columns for v in audit_views() if v.name == view)
    return f"select count(*), bit_xor(hash({', '.join(columns)})) from {view}"


# -- timing -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Timing:
    cold_s: float
    best_s: float


def timed(fn: Callable[[], T]) -> tuple[float, T]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def best_of(fn: Callable[[], T], repeats: int = REPEATS) -> tuple[Timing, T]:
    """Run ``fn`` ``repeats`` times: the first (cold) time, the best time and the last result."""
    times: list[float] = []
    result: T
    for _ in range(repeats):
        seconds, result = timed(fn)
        times.append(seconds)
    return Timing(cold_s=times[0], best_s=min(times)), result


@dataclass(frozen=True)
class ImportFigures:
    seconds: float
    rows_per_s: float
    files: int
    dedupe_seconds: float
    dedupe_added: int


def _append_labels(store: Store, data: Dataset) -> tuple[float, int]:
    """Append the labels a million at a time: the seconds the appends took, and the rows added."""
    seconds, added = 0.0, 0
    for start, stop in data.label_chunks():
        chunk = label_chunk(data, start, stop)
        took, rows = timed(lambda chunk=chunk: store.append("human_labels", chunk, RUN_ID))
        seconds, added = seconds + took, added + rows
    return seconds, added


def time_import(store: Store, data: Dataset) -> ImportFigures:
    for table in data.prompt_appends:
        store.append("prompts", table, RUN_ID)
    seconds, added = _append_labels(store, data)
    if added != data.labels.rows:
        raise AssertionError(f"import added {added} of {data.labels.rows} rows")
    dedupe_seconds, dedupe_added = _append_labels(store, data)
    if dedupe_added != 0:
        raise AssertionError(f"re-importing the same labels added {dedupe_added} rows (expected 0)")
    files = len(data.label_chunks())
    return ImportFigures(seconds, data.labels.rows / seconds, files, dedupe_seconds, dedupe_added)


def time_duckdb(store: Store, repeats: int) -> tuple[float, dict[str, Timing], dict[str, QueryResult]]:
    """Catalog-open time, then each view's timing and result through the read-only path."""
    timings: dict[str, Timing] = {}
    results: dict[str, QueryResult] = {}
    with contextlib.ExitStack() as stack:
        open_s, con = timed(lambda: stack.enter_context(readonly_connection(store)))
        for view in TIMED_VIEWS:
            query = view_query(view)
            timings[view], results[view] = best_of(lambda query=query: execute(con, query), repeats)
    return open_s, timings, results


def time_pandas(
    store: Store, frames: Frames, repeats: int
) -> tuple[dict[str, Timing], dict[str, Timing], dict[str, pd.DataFrame]]:
    """Each computation from the store's files (as DuckDB runs) and from frames already in memory."""
    from_store: dict[str, Timing] = {}
    in_memory: dict[str, Timing] = {}
    results: dict[str, pd.DataFrame] = {}
    for name, compute in PANDAS_QUERIES.items():
        from_store[name], _ = best_of(lambda compute=compute: compute(load_frames(store)), repeats)
        in_memory[name], results[name] = best_of(lambda compute=compute: compute(frames), repeats)
    return from_store, in_memory, results


# -- report -------------------------------------------------------------------------------------------


def query_figures(
    labels: int, duck: Timing, pandas_store: Timing | None, pandas_memory: Timing | None
) -> dict:
    """One view's figures; ``under_target`` is None at a size the targets do not name."""
    target = TARGET_SECONDS.get(labels)
    figures: dict[str, Any] = {
        "duckdb_cold_ms": duck.cold_s * 1000,
        "duckdb_best_ms": duck.best_s * 1000,
        "target_s": target,
        "under_target": None if target is None else duck.best_s < target,
    }
    if pandas_store is not None and pandas_memory is not None:
        speedup = pandas_store.best_s / duck.best_s  # the like-for-like ratio the target is about
        figures |= {
            "pandas_store_best_ms": pandas_store.best_s * 1000,
            "pandas_memory_best_ms": pandas_memory.best_s * 1000,
            "speedup": speedup,
            "speedup_in_memory": pandas_memory.best_s / duck.best_s,  # favours pandas
            "at_least_10x": speedup >= TARGET_SPEEDUP,
        }
    return figures


def _verdict(ok: bool | None) -> str:
    return "-" if ok is None else "PASS" if ok else "MISS"


def _figure(label: str, value: str, note: str = "") -> None:
    print(f"{label:<26}{value:>10}   {note}".rstrip())


def print_report(report: dict[str, Any]) -> None:
    data, imp = report["data"], report["import"]
    print(
        f"\ncharter audit benchmark: {data['rows']:,} human labels, {data['pairs']:,} pairs, "
        f"{data['prompts']:,} prompts in {len(FAMILIES)} families, {len(ANNOTATORS)} annotators"
    )
    env = report["environment"]
    print(
        f"{env['cpus']} CPUs, Python {env['python']}, duckdb {env['duckdb']}, pandas {env['pandas']}, "
        f"pyarrow {env['pyarrow']}, numpy {env['numpy']}; load average {env['loadavg']}\n"
    )
    _figure("data generation (numpy)", f"{report['generate_s']:.2f} s", "the draws, not the Arrow rows")
    _figure(
        "import (Store.append)",
        f"{imp['seconds']:.2f} s",
        f"{imp['rows_per_s']:,.0f} rows/s, {imp['files']} append(s)",
    )
    _figure(
        "re-import (dedupe path)", f"{imp['dedupe_seconds']:.2f} s", f"{imp['dedupe_added']:,} rows added"
    )
    _figure("catalog open (read-only)", f"{report['catalog_open_s'] * 1000:.1f} ms")
    _figure("pandas load (Parquet)", f"{report['pandas_load_s']:.2f} s", "the columns the queries read")
    target = TARGET_SECONDS.get(data["rows"])
    target_label = f"< {target:g} s" if target else "target"
    print()
    header = (
        f"{'view':<20}{'duckdb cold':>12}{'duckdb best':>12}{target_label:>7}{'pandas store':>13}"
        f"{'speed-up':>9}{'pandas memory':>14}{'speed-up':>9}{'>= 10x':>8}"
    )
    print(header)
    print("-" * len(header))
    for name, q in report["queries"].items():
        line = (
            f"{name:<20}{q['duckdb_cold_ms']:>10.0f}ms{q['duckdb_best_ms']:>10.0f}ms"
            f"{_verdict(q['under_target']):>7}"
        )
        if "speedup" in q:
            line += (
                f"{q['pandas_store_best_ms']:>11.0f}ms{q['speedup']:>8.1f}x"
                f"{q['pandas_memory_best_ms']:>12.0f}ms{q['speedup_in_memory']:>8.1f}x"
                f"{_verdict(q['at_least_10x']):>8}"
            )
        print(line)
    check = report["cross_check"]
    unlabelled = ", ".join(check["families_without_human_labels"])
    print(
        f"\ncross-check OK: kappa(all) {check['kappa_all_duckdb']:.4f} (duckdb) / "
        f"{check['kappa_all_pandas']:.4f} (pandas), agreement {check['agreement_all']:.4f}; "
        f"{check['annotator_pairs']} annotator pairs; {check['coverage_rows']} coverage rows "
        f"(no human labels: {unlabelled}); {check['disagreement_pairs']:,} disagreement pairs "
        f"(same order: {check['disagreement_order_equal']})"
    )
    print(
        f"best = best of {report['repeats']} runs (DuckDB and pandas), cold = the first; "
        "speed-up = pandas best / duckdb best.\n"
        f"row views ({', '.join(sorted(ROW_VIEWS))}): count(*) and one hash over every output column.\n"
        "pandas store: read the needed columns from the store's Parquet files and compute, as DuckDB does "
        "(the 10x target uses this); pandas memory: compute on DataFrames already loaded."
    )


def print_targets(reports: list[dict[str, Any]]) -> None:
    """Each view's best time at every size run, with the verdict where a target names the size."""
    sizes = [r["data"]["rows"] for r in reports]
    header = f"{'view':<20}" + "".join(f"{f'{n:,} labels':>26}" for n in sizes)
    print("\n" + header + "\n" + "-" * len(header))
    for view in TIMED_VIEWS:
        cells = []
        for report in reports:
            q = report["queries"][view]
            limit = f" (< {q['target_s']:g} s)" if q["target_s"] else ""
            cells.append(f"{q['duckdb_best_ms']:.0f} ms {_verdict(q['under_target'])}{limit}")
        print(f"{view:<20}" + "".join(f"{cell:>26}" for cell in cells))


def environment() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "duckdb": duckdb.__version__,
        "pandas": pd.__version__,
        "pyarrow": pa.__version__,
        "numpy": np.__version__,
        "loadavg": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def run(n_rows: int, repeats: int) -> dict[str, Any]:
    generate_s, data = timed(lambda: make_dataset(n_rows))
    root = tempfile.mkdtemp(prefix="charter-bench-")
    try:
        store = Store.create(root)
        imported = time_import(store, data)
        sizes = {"rows": n_rows, "pairs": data.labels.pairs, "prompts": len(data.prompts.ids), "seed": SEED}
        del data  # the Parquet files are the source from here on
        catalog_open_s, duck_timings, duck_results = time_duckdb(store, repeats)
        load_s, frames = timed(lambda: load_frames(store))
        pandas_store, pandas_memory, pandas_results = time_pandas(store, frames, repeats)
        del frames
        checked = cross_check(duck_results, pandas_results)
        return {
            "environment": environment(),
            "data": sizes,
            "generate_s": generate_s,
            "import": asdict(imported),
            "catalog_open_s": catalog_open_s,
            "pandas_load_s": load_s,
            "repeats": repeats,
            "queries": {
                view: query_figures(
                    n_rows, duck_timings[view], pandas_store.get(view), pandas_memory.get(view)
                )
                for view in TIMED_VIEWS
            },
            "cross_check": checked,
        }
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--labels",
        type=int,
        nargs="+",
        default=list(DEFAULT_LABELS),
        metavar="N",
        help="labels to generate, one run per size (default 1,000,000)",
    )
    parser.add_argument(
        "--repeats", type=int, default=REPEATS, help=f"runs per query, DuckDB and pandas (default {REPEATS})"
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures as JSON to PATH")
    args = parser.parse_args(argv)
    if min(args.labels) < 1000:
        parser.error("--labels must be at least 1000")
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    reports = []
    for n_rows in args.labels:
        reports.append(run(n_rows, args.repeats))
        print_report(reports[-1])
    print_targets(reports)
    write_figures({"runs": reports}, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
