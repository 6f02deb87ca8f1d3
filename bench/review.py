"""Benchmark: the review bench under load, with 1,000,000 AI labels in the store.

One run:

* builds (once; cached under ``--store-dir``) a store of N AI labels (default 1,000,000) with
  the prompts, principles and a few imported human labels the queues and items need
  (``bench/review_store.py`` says what is in it), and serves a fresh hard-linked copy of it;
* starts the real server, ``charter review --store S --port 0 --overlap 1``, in a subprocess
  and times it to its printed address (the five bundled queues are rerun over the whole store
  before it prints), then creates the annotators with ``charter review add-annotator``;
* the baseline, the HTTP floor: a trivial ``GET /static/bench.css`` round trip, first alone
  (one client, sequential) and then under load (one request every 50 ms from a probe thread
  while the clients run);
* one client alone labels ``--solo`` items (default 100, on top of ``--labels``): the bench's
  service time with no queueing;
* then ``--clients`` annotators (default 8) at once, each its own process with its own
  ``httpx.Client`` on 127.0.0.1 (``--mode thread`` puts them on threads of one process, where the
  client side's GIL shows up in the figures), label ``--labels`` items (default 2,000) between
  them: log in with the one-time link, then loop: ``GET /queue/{name}`` round-robin over the
  five queues (each client starting at another), read ``pair_id``, ``csrf`` and ``submission``
  from the form, ``POST /label`` with a random left/right/tie (its 303 timed alone, not followed).
  A queue that answers "nothing left" is dropped by that client. Figures: labels/s (labels
  over the wall time from the first request to the last answer), p50/p99 of "next item" and
  "submit", against the targets (p99 < 100 ms each, issue 13) and as multiples of the floor;
* SIGTERM to the server (timed to its exit: its last publish), then a check that the store's
  ``human_labels`` holds exactly the labels the clients were acknowledged (solo and loaded),
  with ``source_format`` 'review': no duplicate ``label_id``, one row per submission key, the
  same (annotator, pair, submission) set the clients sent, and at overlap 1 every pair once;
* last, each queue's rerun timed alone in this process: what the server's start spends on the
  store. Serving an item or a label touches only the bench's SQLite database, never the
  Parquet store, so the store's size shows up there and nowhere in the request times.

Targets are reported as PASS/MISS, never asserted; the label check is asserted.

Run from the project root::

    .venv/bin/python bench/review.py                           # 1M AI labels, 8 clients, 2,000 labels
    .venv/bin/python bench/review.py --ai-labels 100000 --labels 400   # a quick run
    .venv/bin/python bench/review.py --mode thread --json review.json
"""

from __future__ import annotations

import argparse
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from machine import write_figures  # bench/machine.py: this script's folder is on sys.path
from review_store import cached_store, check_labels, linked_copy, rerun_seconds  # bench/review_store.py

QUEUES = ("uncertain", "inconsistent", "conflict", "coverage", "audit")
TARGET_S = 0.100
FLOOR_REQUESTS = 200
PROBE_INTERVAL_S = 0.05
CHARTER = Path(sys.executable).with_name("charter")
ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "400", "NO_COLOR": "1"}
ADDRESS = re.compile(r"review bench at (http://\S+) \(queues: ([^)]*)\)")
FIELD = re.compile(r'name="(csrf|pair_id|submission)" value="([^"]*)"')
_barrier: Any = None  # set in each client process (or for the threads) before the clients start


# -- the server -------------------------------------------------------------------------------------


class Server:
    """``charter review`` in a subprocess: started to its printed address, stopped with SIGTERM."""

    def __init__(self, store: Path) -> None:
        command = [str(CHARTER), "review", "--store", str(store), "--port", "0", "--overlap", "1"]
        started = time.perf_counter()
        self.proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENV
        )
        assert self.proc.stdout is not None
        self.lines: list[str] = []
        for line in self.proc.stdout:
            self.lines.append(line)
            if found := ADDRESS.search(line):
                break
        else:
            raise RuntimeError("the server exited before serving:\n" + "".join(self.lines))
        self.start_s = time.perf_counter() - started
        self.address = found.group(1)
        self.sizes = {
            name: int(n) for name, n in (part.rsplit(" ", 1) for part in found.group(2).split(", "))
        }
        self._drain = threading.Thread(target=lambda: self.lines.extend(self.proc.stdout), daemon=True)
        self._drain.start()

    def add_annotator(self, store: Path, name: str) -> str:
        port = self.address.rsplit(":", 1)[1]
        command = [str(CHARTER), "review", "add-annotator", name, "--store", str(store), "--port", port]
        out = subprocess.run(command, capture_output=True, text=True, env=ENV, check=True).stdout
        return re.findall(r"token=([\w-]+)", out)[-1]

    def stop(self) -> float:
        started = time.perf_counter()
        self.proc.send_signal(signal.SIGTERM)
        if self.proc.wait(timeout=120) != 0:
            raise RuntimeError(f"the server exited with {self.proc.returncode}:\n" + "".join(self.lines))
        self._drain.join(timeout=10)
        return time.perf_counter() - started


# -- the clients ------------------------------------------------------------------------------------


def _set_barrier(barrier: Any) -> None:
    global _barrier
    _barrier = barrier


def annotate(address: str, name: str, token: str, quota: int, first_queue: int, seed: int) -> dict[str, Any]:
    """One annotator: log in, then fetch and label ``quota`` items round-robin over the queues."""
    rng = random.Random(seed)
    result: dict[str, Any] = {
        "annotator": name,
        "next": [],
        "empty": [],
        "submit": [],
        "labels": [],
        "errors": [],
    }
    with httpx.Client(base_url=address, timeout=120) as client:
        client.get("/login", params={"token": token}).raise_for_status()
        if client.post("/login", data={"token": token}).status_code != 303:
            raise RuntimeError(f"{name} could not sign in")
        if _barrier is not None:
            _barrier.wait()
        result["started"] = time.monotonic()
        live, turn = list(QUEUES), first_queue
        while len(result["labels"]) < quota and live:
            queue = live[turn % len(live)]
            turn += 1
            started = time.perf_counter()
            page = client.get(f"/queue/{queue}")
            seconds = time.perf_counter() - started
            form = dict(FIELD.findall(page.text))
            if page.status_code != 200:
                result["errors"].append(f"GET /queue/{queue} {page.status_code}: {page.text[:200]}")
            if page.status_code != 200 or len(form) != 3:  # "nothing left for you in this queue"
                result["empty"].append(seconds)
                live.remove(queue)
                continue
            result["next"].append(seconds)
            data = {**form, "queue": queue, "choice": rng.choice(("left", "right", "tie"))}
            started = time.perf_counter()
            answer = client.post("/label", data=data)
            seconds = time.perf_counter() - started
            if answer.status_code != 303 or answer.headers.get("location") != f"/queue/{queue}":
                result["errors"].append(f"POST /label {answer.status_code}: {answer.text[:200]}")
                continue
            result["submit"].append(seconds)
            result["labels"].append((name, form["pair_id"], form["submission"]))
        result["finished"] = time.monotonic()
    return result


def floor(address: str, requests: int) -> list[float]:
    """Sequential ``GET /static/bench.css`` round trips: the HTTP floor."""
    times = []
    with httpx.Client(base_url=address, timeout=60) as client:
        for _ in range(requests):
            started = time.perf_counter()
            client.get("/static/bench.css").raise_for_status()
            times.append(time.perf_counter() - started)
    return times


def probe(address: str, stop: threading.Event, times: list[float]) -> None:
    """The floor under load: one trivial GET every PROBE_INTERVAL_S until ``stop``."""
    with httpx.Client(base_url=address, timeout=60) as client:
        while not stop.wait(PROBE_INTERVAL_S):
            started = time.perf_counter()
            client.get("/static/bench.css").raise_for_status()
            times.append(time.perf_counter() - started)


def run_clients(
    address: str, annotators: list[tuple[str, str]], labels: int, mode: str, seed: int
) -> tuple[list[dict[str, Any]], list[float]]:
    """Every annotator at once (processes or threads); returns their results and the probe's times."""
    n = len(annotators)
    quotas = [labels // n + (i < labels % n) for i in range(n)]
    executor: Executor
    if mode == "process":
        context = get_context("fork")
        barrier = context.Barrier(n)
        executor = ProcessPoolExecutor(n, mp_context=context, initializer=_set_barrier, initargs=(barrier,))
    else:
        _set_barrier(threading.Barrier(n))
        executor = ThreadPoolExecutor(n)
    stop, probe_times = threading.Event(), []
    prober = threading.Thread(target=probe, args=(address, stop, probe_times))
    with executor:
        futures = [
            executor.submit(annotate, address, name, token, quotas[i], i % len(QUEUES), seed + i)
            for i, (name, token) in enumerate(annotators)
        ]
        prober.start()
        results = [future.result() for future in futures]
    stop.set()
    prober.join()
    _set_barrier(None)
    return results, probe_times


# -- figures ----------------------------------------------------------------------------------------


def quantiles(times: list[float]) -> dict[str, float]:
    if not times:
        return {"n": 0}
    p50, p99 = np.percentile(np.array(times) * 1000, [50, 99])
    return {
        "n": len(times),
        "p50_ms": round(float(p50), 2),
        "p99_ms": round(float(p99), 2),
        "max_ms": round(max(times) * 1000, 2),
    }


def phase(results: list[dict[str, Any]]) -> dict[str, Any]:
    wall = max(r["finished"] for r in results) - min(r["started"] for r in results)
    merged = {key: [t for r in results for t in r[key]] for key in ("next", "empty", "submit")}
    labels = sum(len(r["labels"]) for r in results)
    return {
        "labels": labels,
        "wall_s": round(wall, 2),
        "labels_per_s": round(labels / wall, 1),
        "errors": [e for r in results for e in r["errors"]],
        **{key: quantiles(times) for key, times in merged.items()},
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    base, store_figures, built = cached_store(args.store_dir, args.ai_labels, args.seed)
    store = linked_copy(base, args.store_dir / "run")
    load_before = os.getloadavg()[0]
    server = Server(store)
    try:
        started = time.perf_counter()
        names = ["solo", *(f"annotator-{i}" for i in range(args.clients))]
        tokens = {name: server.add_annotator(store, name) for name in names}
        add_s = (time.perf_counter() - started) / len(names)
        floor_alone = floor(server.address, FLOOR_REQUESTS)
        solo = (
            annotate(server.address, "solo", tokens["solo"], args.solo, 0, args.seed) if args.solo else None
        )
        clients = [(n, tokens[n]) for n in names[1:]]
        results, probe_times = run_clients(server.address, clients, args.labels, args.mode, args.seed + 1)
    finally:
        stop_s = server.stop()
    sent = [label for r in ([solo] if solo else []) + results for label in r["labels"]]
    return {
        "store": {**store_figures, "built_now": built, "path": str(base)},
        "mode": args.mode,
        "clients": args.clients,
        "server_start_s": round(server.start_s, 2),
        "queue_sizes": server.sizes,
        "add_annotator_s": round(add_s, 2),
        "floor_alone": quantiles(floor_alone),
        "floor_under_load": quantiles(probe_times),
        "solo": phase([solo]) if solo else None,
        "load": phase(results),
        "server_stop_s": round(stop_s, 2),
        "server_output": [line.rstrip() for line in server.lines],
        "check": check_labels(store, sent),
        "load_average_1m": {"before": load_before, "after": os.getloadavg()[0]},
        "rerun_s": rerun_seconds(store),
        "cpus": os.cpu_count(),
    }


def _line(label: str, q: dict[str, Any], floor_p50: float | None = None, target: bool = False) -> str:
    if not q.get("n"):
        return f"  {label:<22} (none)"
    text = f"  {label:<22} p50 {q['p50_ms']:6.1f} ms  p99 {q['p99_ms']:6.1f} ms  max {q['max_ms']:6.1f} ms"
    text += f"  n {q['n']:>5}"
    if floor_p50:
        text += f"  p50 {q['p50_ms'] / floor_p50:4.1f}x the floor"
    if target:
        verdict = "PASS" if q["p99_ms"] < TARGET_S * 1000 else "MISS"
        text += f"  (target p99 < {TARGET_S * 1000:.0f} ms: {verdict})"
    return text


def print_report(r: dict[str, Any]) -> None:
    s, load, c = r["store"], r["load"], r["check"]
    kind = "processes" if r["mode"] == "process" else "threads of one process"
    print(f"charter review bench benchmark ({r['cpus']} CPUs; {r['clients']} clients, {kind})")
    print(
        f"store: {s['ai_labels']:,} AI labels on {s['pairs']:,} pairs ({s['prompts']:,} prompts, "
        f"{s['principles']} principles, responses ~{s['response_chars']:.0f} characters, the two orders "
        f"disagree on {s['orders_disagree']:.0%}), {s['human_labels']:,} imported human labels; "
        f"{s['bytes'] / 1e6:.0f} MB, {'built now' if s['built_now'] else 'cached'} ({s['build_seconds']} s)"
    )
    sizes = ", ".join(f"{k} {v}" for k, v in r["queue_sizes"].items())
    print(f"server start: {r['server_start_s']:.1f} s to the printed address (queues: {sizes})")
    print("  of which, timed alone: " + ", ".join(f"{k} {v:.2f} s" for k, v in r["rerun_s"].items()))
    print(f"add-annotator: {r['add_annotator_s']:.1f} s each (a CLI process)")
    print("HTTP floor, GET /static/bench.css:")
    print(_line("alone", r["floor_alone"]))
    print(_line("under load (probe)", r["floor_under_load"]))
    if solo := r["solo"]:
        rate = f"{solo['labels']} labels in {solo['wall_s']} s, {solo['labels_per_s']} labels/s"
        print(f"one client alone: {rate}")
        print(_line("next item (GET queue)", solo["next"], r["floor_alone"]["p50_ms"]))
        print(_line("submit (POST label)", solo["submit"], r["floor_alone"]["p50_ms"]))
    print(
        f"{r['clients']} clients at once: {load['labels']:,} labels in {load['wall_s']} s, "
        f"{load['labels_per_s']} labels/s"
    )
    under_load = r["floor_under_load"].get("p50_ms")
    print(_line("next item (GET queue)", load["next"], under_load, target=True))
    print(_line("submit (POST label)", load["submit"], under_load, target=True))
    print(_line("nothing-left pages", load["empty"]))
    if load["errors"]:
        print(f"  errors: {len(load['errors'])}, first: {load['errors'][0]}")
    last = r["server_output"][-1] if r["server_output"] else ""
    print(f"server stop: {r['server_stop_s']:.1f} s from SIGTERM to exit ({last})")
    print(
        f"check: {c['stored']:,} review labels in human_labels for {c['sent']:,} acknowledged; distinct: "
        f"{c['distinct_label_ids']:,} label ids, {c['distinct_submissions']:,} (annotator, pair, "
        f"submission), "
        f"{c['distinct_pairs']:,} pairs (overlap 1); the clients' own set: {c['same_as_sent']}: "
        f"{'OK' if c['ok'] else 'FAILED'}"
    )
    la = r["load_average_1m"]
    print(f"1-minute load average {la['before']:.2f} before, {la['after']:.2f} after")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ai-labels", type=int, default=1_000_000, help="AI labels in the store")
    parser.add_argument("--labels", type=int, default=2000, help="labels the clients submit together")
    parser.add_argument("--clients", type=int, default=8, help="annotators labelling at once")
    parser.add_argument("--solo", type=int, default=100, help="labels one client makes alone first")
    parser.add_argument("--mode", choices=("process", "thread"), default="process", help="client processes")
    parser.add_argument("--store-dir", type=Path, default=Path("/tmp/charter-bench-review"))
    parser.add_argument("--seed", type=int, default=20_240_613)
    parser.add_argument("--json", type=Path, help="also write the figures as JSON")
    args = parser.parse_args()
    report = run(args)
    print_report(report)
    write_figures(report, args.json)
    if not report["check"]["ok"]:
        print("the label check FAILED", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
