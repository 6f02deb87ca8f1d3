"""How long a fresh ``charter`` process takes to answer: ``charter --help`` and ``charter sql``.

Each is timed end to end as a user runs it (a new process, ``PYTHONDONTWRITEBYTECODE=1`` as on
these machines, best of ``--repeats``), beside the interpreter's own start (``python -c pass``)
in the same run, the floor no command can beat. ``charter sql`` is timed on a store that is
given (``--store``, e.g. the demo's) or made here by ``charter ingest`` of the bundled files;
its first query after a change builds the store's SQL catalog, every later one reuses it, so
both are printed.

    .venv/bin/python bench/startup.py [--store store] [--repeats 7]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
CHARTER = str(Path(sys.executable).parent / "charter")
TARGETS = {"charter --help": 0.3, "charter sql": 0.5}
QUERY = "select count(*) from prompts"


def timed(command: list[str], env: dict[str, str]) -> float:
    """Seconds from starting ``command`` to its exit (it must succeed)."""
    started = time.perf_counter()
    subprocess.run(command, cwd=PROJECT_ROOT, env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def best(command: list[str], env: dict[str, str], repeats: int) -> float:
    return min(timed(command, env) for _ in range(repeats))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, help="store to query (default: one made by charter ingest)")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="charter-startup-") as scratch:
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "CHARTER_CACHE": str(Path(scratch) / "cache")}
        store = args.store
        if store is None:
            store = Path(scratch) / "store"
            subprocess.run(
                [CHARTER, "ingest", "--store", str(store)],
                cwd=PROJECT_ROOT,
                env=env,
                check=True,
                capture_output=True,
            )
        print(f"load average before: {os.getloadavg()[0]:.2f}; store {store}")
        sql = [CHARTER, "sql", QUERY, "--store", str(store)]
        figures = {
            "python -c pass (the floor)": best([sys.executable, "-c", "pass"], env, args.repeats),
            "charter --help": best([CHARTER, "--help"], env, args.repeats),
            "charter sql, first query (builds the catalog)": timed(sql, env),
            "charter sql": best(sql, env, args.repeats),
        }
        floor = figures["python -c pass (the floor)"]
        for name, seconds in figures.items():
            target = TARGETS.get(name)
            verdict = (
                "" if target is None else f"  target < {target} s: {'PASS' if seconds < target else 'MISS'}"
            )
            print(f"{name:48s} {seconds:6.3f} s  {seconds / floor:5.1f}x the floor{verdict}")
        print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
