"""Benchmark: audit queries on a table split into 10,000 files, before and after compaction.

One run, on ``bench/audit.py``'s synthetic human labels (fixed seed), measures:

* writing N labels (default 200,000) as F Parquet files (default 10,000: 20 labels each, what
  10,000 small appends leave behind) in a store from before manifests, and adopting them
  (``Store.adopt``: each file read whole, page checksums checked, hashed and recorded);
* before compaction: opening the read-only SQL session (``readonly_connection``: every file's
  size and footer checked against the manifest, then a view over the listed files), each audit
  query (``label_counts``, ``human_agreement``) through ``execute``, cold and best of 3, and
  re-appending a batch already stored (adds nothing: the full sha256 check and the id scan
  every append makes) and ``Store.verify``;
* compaction (``tasks.store.compaction.compact``, what ``charter store compact`` runs);
* the same measurements after it, the before/after ratio of each, and that every query gave
  the same rows (asserted).

Run from the project root::

    .venv/bin/python bench/compact.py                     # 200,000 labels in 10,000 files
    .venv/bin/python bench/compact.py --rows 20000 --files 1000   # a quick run
    .venv/bin/python bench/compact.py --json compact.json # also write the figures as JSON
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

# bench/audit.py: this script's folder is on sys.path; it puts the project on it where needed.
from audit import RUN_ID, Timing, best_of, environment, make_dataset, timed
from machine import write_figures  # bench/machine.py: this script's folder is on sys.path

from tasks.store.compaction import compact
from tasks.store.sql import QueryResult, execute, readonly_connection
from tasks.store.store import MARKER, Store

DEFAULT_ROWS = 200_000
DEFAULT_FILES = 10_000
QUERIES = {
    "label_counts": "select * from label_counts",
    "human_agreement": "select * from human_agreement",
}
TABLE = "human_labels"


def fragmented_store(root: Path, n_rows: int, n_files: int) -> tuple[Store, pa.Table, float]:
    """A store from before manifests whose labels lie in ``n_files`` files; adopting them, timed."""
    data = make_dataset(n_rows)
    store = Store.create(root)
    for prompts in data.prompt_appends:
        store.append("prompts", prompts, RUN_ID)
    (store.root / MARKER).write_text(json.dumps({"format": 1}))
    labels = store.read(TABLE).schema.empty_table()  # the stored schema, with run_id and created_at
    stamped = data.labels.append_column("run_id", pa.repeat(pa.scalar(RUN_ID), n_rows))
    stamped = stamped.append_column(
        "created_at", pa.repeat(pa.scalar(0, labels.schema.field("created_at").type), n_rows)
    ).cast(labels.schema)
    per_file = -(-n_rows // n_files)
    folder = store.table_dir(TABLE)
    for i in range(n_files):
        pq.write_table(
            stamped.slice(i * per_file, per_file), folder / f"part-{i:06d}.parquet", compression="zstd"
        )
    store = Store(root)
    adopt_s, _ = timed(store.adopt)
    return store, stamped.slice(0, per_file), adopt_s


@dataclass(frozen=True)
class Phase:
    files: int
    catalog_open: Timing
    queries: dict[str, Timing]
    append_dedupe: Timing
    verify: Timing


def measure(store: Store, batch: pa.Table) -> tuple[Phase, dict[str, QueryResult]]:
    opened, _ = best_of(lambda: _open(store))
    queries: dict[str, Timing] = {}
    results: dict[str, QueryResult] = {}
    with readonly_connection(store) as con:
        for name, query in QUERIES.items():
            queries[name], results[name] = best_of(lambda query=query: execute(con, query))
    data_columns = [c for c in batch.column_names if c not in ("run_id", "created_at")]
    append, added = best_of(lambda: store.append(TABLE, batch.select(data_columns), RUN_ID))
    if added:
        raise AssertionError(f"re-appending stored labels added {added} rows")
    verify, _ = best_of(store.verify)
    return Phase(len(store.files(TABLE)), opened, queries, append, verify), results


def _open(store: Store) -> None:
    with readonly_connection(store):
        pass


def ratios(before: Phase, after: Phase) -> dict[str, float]:
    pairs = {"catalog_open": (before.catalog_open, after.catalog_open)}
    pairs |= {name: (before.queries[name], after.queries[name]) for name in QUERIES}
    pairs |= {
        "append_dedupe": (before.append_dedupe, after.append_dedupe),
        "verify": (before.verify, after.verify),
    }
    return {name: old.best_s / new.best_s for name, (old, new) in pairs.items()}


def run(n_rows: int, n_files: int) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="charter-bench-compact-"))
    try:
        setup_s, (store, batch, adopt_s) = timed(lambda: fragmented_store(root / "store", n_rows, n_files))
        before, before_results = measure(store, batch)
        compact_s, done = timed(lambda: compact(store, TABLE))
        after, after_results = measure(store, batch)
        for name in QUERIES:
            if before_results[name].rows != after_results[name].rows:
                raise AssertionError(f"{name} changed with compaction")
        return {
            "environment": environment(),
            "data": {"rows": n_rows, "files": n_files, "rows_per_file": -(-n_rows // n_files)},
            "setup_s": setup_s,
            "adopt_s": adopt_s,
            "compact_s": compact_s,
            "compaction": asdict(done),
            "before": asdict(before),
            "after": asdict(after),
            "speedup": ratios(before, after),
            "results_equal": True,
        }
    finally:
        shutil.rmtree(root, ignore_errors=True)


def print_report(report: dict[str, Any]) -> None:
    data, env = report["data"], report["environment"]
    print(
        f"\ncharter compaction benchmark: {data['rows']:,} human labels in {data['files']:,} files "
        f"({data['rows_per_file']} a file)"
    )
    print(f"{env['cpus']} CPUs, Python {env['python']}, duckdb {env['duckdb']}, pyarrow {env['pyarrow']}\n")
    print(f"adopting {data['files']:,} files (read, checksums, sha256): {report['adopt_s']:.2f} s")
    done = report["compaction"]
    print(
        f"compaction: {done['files_before']:,} files -> {done['files_after']:,} "
        f"in {report['compact_s']:.2f} s "
        f"({done['rows_merged']:,} rows merged)\n"
    )
    before, after = report["before"], report["after"]
    rows = {"catalog open": (before["catalog_open"], after["catalog_open"], "catalog_open")}
    rows |= {name: (before["queries"][name], after["queries"][name], name) for name in QUERIES}
    rows |= {
        "append (dedupe)": (before["append_dedupe"], after["append_dedupe"], "append_dedupe"),
        "verify (sha256)": (before["verify"], after["verify"], "verify"),
    }
    header = f"{'step':<18}{'before cold':>12}{'before best':>12}{'after cold':>11}{'after best':>11}"
    header += f"{'speed-up':>9}"
    print(header)
    print("-" * len(header))
    for label, (old, new, key) in rows.items():
        print(
            f"{label:<18}{old['cold_s'] * 1000:>10.0f}ms{old['best_s'] * 1000:>10.0f}ms"
            f"{new['cold_s'] * 1000:>9.0f}ms{new['best_s'] * 1000:>9.0f}ms{report['speedup'][key]:>8.1f}x"
        )
    print(
        "\nbest = best of 3; cold = first run; speed-up = before best / after best. Query results "
        "before and after are the same rows (checked)."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS, help="labels (default 200,000)")
    parser.add_argument(
        "--files", type=int, default=DEFAULT_FILES, help="files to split them into (default 10,000)"
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures as JSON to PATH")
    args = parser.parse_args(argv)
    if not 1 < args.files <= args.rows:
        parser.error("--files must be between 2 and --rows")
    report = run(args.rows, args.files)
    print_report(report)
    write_figures(report, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
