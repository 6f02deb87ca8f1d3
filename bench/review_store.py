"""The store ``bench/review.py`` serves (N AI labels, default 1,000,000, and what their items
need), and the checks of that store after a run: what landed, and the queue reruns timed alone.

Built once and cached (``--store-dir``): each run of the benchmark serves a hard-linked copy,
which is safe because a store never rewrites a Parquet file, only adds new ones.

Every id is the real content hash (``tasks.core.conversation``): the bench rebuilds a label's
pair id from the texts it shows (``human_label_row``), so synthetic ids would not meet the
queued pairs again. The data, from a fixed seed:

* the bundled ``constitutions/helpful-harmless.yaml``, ingested as ``charter ingest`` does
  (16 principles);
* N / 16 / 2 prompts (31,250 for 1M labels) in 12 families, one user turn of 12 to 30 words;
* two pairs per prompt, four distinct responses of 30 to 62 words (about 300 characters);
* every pair judged under every principle (16 AI labels per pair, 62,500 pairs): a pair's
  P(A better) in each order is its own latent value (spread over [0, 1]) plus noise, and the
  two orders prefer different responses on about 30% of labels (``orders_agree`` false);
* imported human labels on 4% of the pairs (2 or 3 of 6 importers each, never on the last
  two families), agreeing with the judge 60% of the time: what the ``conflict`` and
  ``coverage`` queues need to be non-empty.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
from audit import FAMILIES  # bench/audit.py: the same twelve synthetic families
from audit_data import VOCABULARY  # and the same words

from tasks.core.conversation import pair_id, response_id
from tasks.core.hashing import content_id
from tasks.ingest.human_labels.label_rows import LabelOrigin, human_label_row
from tasks.ingest.ingest import ingest_constitution
from tasks.ingest.prompt_sets import prompt_record
from tasks.review.serve import open_bench
from tasks.review.settings import ReviewSettings
from tasks.store.runs import recorded_run
from tasks.store.schema import table_spec
from tasks.store.store import Store

ROOT = Path(__file__).resolve().parent.parent
CONSTITUTION = ROOT / "constitutions" / "helpful-harmless.yaml"
BUILD_VERSION = 1  # bump when the data changes: a cached store of another version is rebuilt
MANIFEST = "bench-review.json"
PAIRS_PER_PROMPT = 2
BATCH_ROWS = 250_000
INCONSISTENT_SHARE = 0.30
HUMAN_PAIR_SHARE = 0.04
IMPORTERS = tuple(f"importer-{i}" for i in range(6))
WORDS = np.array(VOCABULARY.split())
JUDGE = {
    "judge_model": "smollm2-135m-instruct@b179c9523d0e",
    "method": "logprob",
    "judge_backend": "vllm",
    "params": json.dumps({"template": "a366137c25bbd2cdd252d72ae97e866ecb22a46aaa9a38937fe6bbb5a4dec538"}),
}


def _texts(rng: np.random.Generator, n: int, low: int, high: int) -> list[str]:
    lengths = rng.integers(low, high + 1, size=n)
    picks = rng.integers(0, len(WORDS), size=(n, high))
    return [" ".join(WORDS[row[:k]]) for row, k in zip(picks, lengths, strict=True)]


def _data_schema(table: str) -> pa.Schema:
    """The table's columns less ``run_id`` and ``created_at``, which Store.append stamps."""
    return pa.schema([f for f in table_spec(table).schema if f.name not in ("run_id", "created_at")])


def _p_values(rng: np.random.Generator, latent: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """P(A better) with A shown first and second; the orders disagree on INCONSISTENT_SHARE."""
    n = len(latent)
    first = np.clip(latent + rng.normal(0, 0.12, n), 0.001, 0.999)
    second = np.clip(latent + rng.normal(0, 0.12, n), 0.001, 0.999)
    agree = rng.random(n) >= INCONSISTENT_SHARE
    same_side = (first > 0.5) == (second > 0.5)
    return first, np.where(same_side == agree, second, 1 - second)


def _ai_batch(
    rng: np.random.Generator,
    pairs: dict[str, pa.Array],
    latent: np.ndarray,
    pair_index: np.ndarray,
    principles: list[Any],
    constitution_id: str,
) -> pa.Table:
    """The AI labels of ``pair_index``, one per principle (response A sorts first, as the judge does)."""
    n_p = len(principles)
    rows = np.repeat(pair_index, n_p)
    which = np.tile(np.arange(n_p), len(pair_index))
    take = pa.array(rows)
    p_first, p_second = _p_values(rng, latent[rows])
    p_a = (p_first + p_second) / 2
    a_wins = p_a > 0.5
    pair_ids = pairs["pair_id"].take(take)
    principle_ids = np.array([p.id for p in principles], dtype=object)[which]
    label_ids = [
        hashlib.sha256(f"bench-ai-label\0{pair}\0{principle}".encode()).hexdigest()
        for pair, principle in zip(pair_ids.to_pylist(), principle_ids, strict=True)
    ]
    a_ids, b_ids = pairs["a_id"].take(take), pairs["b_id"].take(take)
    n = len(rows)
    columns = {
        "label_id": pa.array(label_ids),
        "pair_id": pair_ids,
        "prompt_id": pairs["prompt_id"].take(take),
        "response_a_id": a_ids,
        "response_b_id": b_ids,
        "response_a": pairs["a_text"].take(take),
        "response_b": pairs["b_text"].take(take),
        "choice": pa.array(np.where(a_wins, "a", "b")),
        "preferred_id": pa.array(np.where(a_wins, a_ids.to_numpy(False), b_ids.to_numpy(False))),
        "vote": pa.array(np.where(a_wins, "first", "second")),
        "judge_model": pa.repeat(JUDGE["judge_model"], n),
        "method": pa.repeat(JUDGE["method"], n),
        "principle_id": pa.array(principle_ids, pa.string()),
        "constitution_id": pa.repeat(constitution_id, n),
        "p_a_first": pa.array(p_first),
        "p_a_second": pa.array(p_second),
        "p_a": pa.array(p_a),
        "orders_agree": pa.array((p_first > 0.5) == (p_second > 0.5)),
        "rule_id": pa.nulls(n, pa.string()),
        "rationale": pa.nulls(n, pa.string()),
        "principle_hash": pa.array(
            np.array([p.principle_hash for p in principles], dtype=object)[which], pa.string()
        ),
        "judge_backend": pa.repeat(JUDGE["judge_backend"], n),
        "params": pa.repeat(JUDGE["params"], n),
    }
    return pa.table(columns)  # Store.append casts it to the table's schema


def _human_rows(
    rng: np.random.Generator, pairs: dict[str, list[Any]], latent: np.ndarray, family: np.ndarray
) -> list[dict[str, Any]]:
    """Imported labels on HUMAN_PAIR_SHARE of the pairs, agreeing with the judge 60% of the time."""
    n_pairs = len(latent)
    eligible = np.flatnonzero(family[np.arange(n_pairs) // PAIRS_PER_PROMPT] < len(FAMILIES) - 2)
    chosen = np.sort(rng.choice(eligible, size=int(n_pairs * HUMAN_PAIR_SHARE), replace=False))
    origin = LabelOrigin("label-studio", "/bench/label-studio-export.json", "0" * 64)
    rows = []
    for j in chosen:
        ai_first = latent[j] > 0.5
        truth_first = ai_first if rng.random() < 0.6 else not ai_first
        for annotator in rng.choice(IMPORTERS, size=int(rng.integers(2, 4)), replace=False):
            vote = (
                ("first" if truth_first else "second")
                if rng.random() < 0.8
                else str(rng.choice(["tie", "second" if truth_first else "first"]))
            )
            swapped = rng.random() < 0.5
            texts = (pairs["a_text"][j], pairs["b_text"][j])
            shown = texts[::-1] if swapped else texts
            choice = "tie" if vote == "tie" else "a" if (vote == "first") != swapped else "b"
            row = human_label_row(
                messages=pairs["messages"][pairs["prompt"][j]],
                response_a=shown[0],
                response_b=shown[1],
                choice=choice,
                annotator=str(annotator),
                origin=origin,
                source_row=len(rows) + 1,
            )
            rows.append(
                {**row, "shown_first": "second" if swapped else "first", "queue": None, "ai_shown": None}
            )
    return rows


def build_store(root: Path, labels: int, seed: int) -> dict[str, Any]:
    """Write the benchmark's store at ``root``; returns what it holds."""
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    store = Store.create(root)
    with recorded_run(store, "bench-review-build", {"labels": labels, "seed": seed}) as run:
        constitution = ingest_constitution(run, CONSTITUTION)
        principles = list(constitution.principles)
        n_pairs = -(-labels // len(principles))
        n_prompts = -(-n_pairs // PAIRS_PER_PROMPT)
        family = rng.integers(0, len(FAMILIES), size=n_prompts)
        records = [
            prompt_record(
                [{"role": "user", "content": text + "?"}], "bench-prompts", FAMILIES[f], f"bench-{i}"
            )
            for i, (text, f) in enumerate(zip(_texts(rng, n_prompts, 12, 30), family, strict=True))
        ]
        if len({r.prompt_id for r in records}) != n_prompts:
            raise RuntimeError("two synthetic prompts came out the same; change the seed")
        run.append(
            "prompts", pa.Table.from_pylist([r.row() for r in records], schema=_data_schema("prompts"))
        )
        texts = _texts(rng, 2 * n_pairs, 30, 62)
        ids = [response_id(t) for t in texts]
        if len(set(ids)) != len(ids):
            raise RuntimeError("two synthetic responses came out the same; change the seed")
        a = [2 * j if ids[2 * j] < ids[2 * j + 1] else 2 * j + 1 for j in range(n_pairs)]
        b = [4 * j + 1 - a[j] for j in range(n_pairs)]
        prompt_of = [j // PAIRS_PER_PROMPT for j in range(n_pairs)]
        columns: dict[str, list[Any]] = {
            "prompt": prompt_of,
            "messages": [list(r.messages) for r in records],
            "prompt_id": [records[p].prompt_id for p in prompt_of],
            "a_id": [ids[i] for i in a],
            "b_id": [ids[i] for i in b],
            "a_text": [texts[i] for i in a],
            "b_text": [texts[i] for i in b],
        }
        columns["pair_id"] = [
            pair_id(p, x, y)
            for p, x, y in zip(columns["prompt_id"], columns["a_id"], columns["b_id"], strict=True)
        ]
        arrays = {
            k: pa.array(columns[k], pa.string())
            for k in ("pair_id", "prompt_id", "a_id", "b_id", "a_text", "b_text")
        }
        latent = rng.beta(0.8, 0.8, size=n_pairs)
        written, step = 0, max(1, BATCH_ROWS // len(principles))
        for start in range(0, n_pairs, step):
            batch = _ai_batch(
                rng,
                arrays,
                latent,
                np.arange(start, min(start + step, n_pairs)),
                principles,
                constitution.constitution_id,
            )
            batch = batch.slice(0, min(batch.num_rows, labels - written))
            written += run.append("ai_labels", batch)
        humans = _human_rows(rng, columns, latent, family)
        run.append("human_labels", humans)
    return {
        "version": BUILD_VERSION,
        "labels": labels,
        "seed": seed,
        "ai_labels": written,
        "pairs": n_pairs,
        "prompts": n_prompts,
        "principles": len(principles),
        "human_labels": len(humans),
        "response_chars": round(float(np.mean([len(t) for t in texts])), 1),
        "orders_disagree": round(
            1 - float(np.mean(store.read("ai_labels", ["orders_agree"])["orders_agree"].to_numpy(False))), 3
        ),
        "bytes": sum(f.stat().st_size for f in root.rglob("*.parquet")),
        "build_seconds": round(time.perf_counter() - started, 1),
    }


def cached_store(store_dir: Path, labels: int, seed: int) -> tuple[Path, dict[str, Any], bool]:
    """The built store under ``store_dir`` (built now if missing or of other parameters)."""
    base = store_dir / "base"
    manifest = base / MANIFEST
    if manifest.exists():
        figures = json.loads(manifest.read_text())
        wanted = {"version": BUILD_VERSION, "labels": labels, "seed": seed}
        if all(figures.get(key) == value for key, value in wanted.items()):
            return base, figures, False
    partial = store_dir / "base.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    figures = build_store(partial, labels, seed)
    (partial / MANIFEST).write_text(json.dumps(figures, indent=2) + "\n")
    shutil.rmtree(base, ignore_errors=True)
    partial.rename(base)
    return base, figures, True


def linked_copy(base: Path, target: Path) -> Path:
    """A fresh store at ``target`` sharing ``base``'s Parquet files (hard links; they never change)."""
    shutil.rmtree(target, ignore_errors=True)
    for source in base.rglob("*"):
        if source.is_file() and not source.name.startswith("."):
            copy = target / source.relative_to(base)
            copy.parent.mkdir(parents=True, exist_ok=True)
            copy.hardlink_to(source)
    Store.create(target)  # every table's folder, even the empty ones
    return target


def check_labels(store: Path, sent: list[tuple[str, str, str]]) -> dict[str, Any]:
    """What landed in ``human_labels`` against what the clients were acknowledged."""
    files = [str(f) for f in Store(store).files("human_labels")]  # the manifest's files only
    rows = duckdb.sql(
        "select label_id, annotator, pair_id, source_sha256 from read_parquet($files, union_by_name = true) "
        "where source_format = 'review'",
        params={"files": files},
    ).fetchall()
    stored_keys = {(a, p, s) for _, a, p, s in rows}
    sent_keys = {(a, p, content_id("review_submission", s)) for a, p, s in sent}
    figures = {
        "sent": len(sent),
        "stored": len(rows),
        "distinct_label_ids": len({r[0] for r in rows}),
        "distinct_submissions": len(stored_keys),
        "distinct_pairs": len({r[2] for r in rows}),
        "same_as_sent": stored_keys == sent_keys,
    }
    # At overlap 1 every pair is labelled once, so the pairs must be as many as the labels too.
    counts = {
        len(sent),
        len(rows),
        len(stored_keys),
        figures["distinct_label_ids"],
        figures["distinct_pairs"],
    }
    figures["ok"] = figures["same_as_sent"] and len(counts) == 1
    return figures


def rerun_seconds(store: Path) -> dict[str, float]:
    """Each bundled queue's rerun (its SQL, the items, the voters) timed alone, in this process."""
    started = time.perf_counter()
    bench = open_bench(Store(store), ReviewSettings(overlap=1))
    seconds = {"open and check the queues": time.perf_counter() - started}
    for name in bench.queues:
        started = time.perf_counter()
        bench.rerun(name)
        seconds[name] = time.perf_counter() - started
    return {name: round(s, 2) for name, s in seconds.items()}
