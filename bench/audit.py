"""Benchmark: the audit views in DuckDB against the same computations in pandas.

One run, on synthetic data generated with a fixed seed, measures:

* importing N human labels (default 1,000,000) with ``Store.append`` into a fresh temporary
  store (rows/s), then appending the same table again: the dedupe path, which must add 0 rows;
* opening the read-only SQL session, ``tasks.store.sql.readonly_connection`` (the "catalog open");
* ``select * from human_agreement``, ``coverage_ledger`` and ``disagreements`` through
  ``tasks.store.sql.execute``: the first run of the session ("cold", though the files just written are in
  the OS page cache) and the best of 3;
* the same three computations in pandas, starting from DataFrames already in memory (loading the
  stored Parquet files is timed on its own and not counted in the query times), best of 3.

It then checks that both sides computed the same thing and prints, per query, the DuckDB and pandas
times, the speed-up and whether the targets hold (each DuckDB query under 1 s and at least 10x
faster than pandas). Targets are reported as PASS/MISS, not asserted; the cross-check is asserted.

The synthetic data: about 0.04 * N prompts across 12 families (the last two never labelled, so the
coverage ledger has zeros), about N / 2.8 pairs of two responses, 25 annotators, 1 to 5 annotators
per pair (so most pairs have two or more), votes first/second/tie with two annotators agreeing about
75% of the time, and each label shown in a random order (``choice`` and ``preferred_id`` agree).
Response texts run from about 15 to 900 characters (about 450 on average); every label of a pair
repeats them, as the store does. DuckDB uses every core; pandas runs on one, as it does.

Run from the project root::

    .venv/bin/python bench/audit.py                   # 1,000,000 labels
    .venv/bin/python bench/audit.py --rows 100000     # a quick run
    .venv/bin/python bench/audit.py --json audit.json # also write the figures as JSON
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
import pyarrow.compute as pc
from machine import write_figures  # bench/machine.py: this script's folder is on sys.path

try:
    from tasks.store.schema import table_spec
    from tasks.store.sql import QueryResult, execute, readonly_connection
    from tasks.store.store import Store
except ImportError:  # not installed: run from a checkout
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tasks.store.schema import table_spec
    from tasks.store.sql import QueryResult, execute, readonly_connection
    from tasks.store.store import Store

T = TypeVar("T")

SEED = 20_240_611
DEFAULT_ROWS = 1_000_000
REPEATS = 3
RUN_ID = "bench-audit"

FAMILIES = (
    "coding",
    "math",
    "medical",
    "legal",
    "finance",
    "creative-writing",
    "privacy",
    "self-harm",
    "harmful-requests",
    "politics",
    "multilingual",
    "jailbreaks",
)
UNLABELLED_FAMILIES = 2  # the last two families get prompts but no labels
FAMILY_WEIGHTS = np.linspace(2.0, 1.0, len(FAMILIES))
ANNOTATORS = tuple(f"annotator-{i:02d}" for i in range(25))  # 25 is 5^2: see _annotators()
ANNOTATORS_PER_PAIR = np.arange(1, 6)
ANNOTATORS_PER_PAIR_P = (0.20, 0.25, 0.25, 0.15, 0.15)  # mean 2.8: about N / 2.8 pairs
TRUE_VOTE_P = (0.45, 0.45, 0.10)  # first, second, tie
ANNOTATOR_ACCURACY = 0.86  # two annotators then agree 0.86^2 + 0.14^2 / 2 = 75% of the time
PROMPTS_PER_LABEL = 0.04
RETAGGED_SHARE = 0.05  # prompts a later prompt set gives another family (the earliest must win)
TEXT_POOL = 4096
VOTES = ("first", "second", "tie")
CHOICES = ("a", "b", "tie")
SOURCES = ("human", "ai")

QUERIES = {
    "human_agreement": "select * from human_agreement",
    "coverage_ledger": "select * from coverage_ledger",
    "disagreements": "select * from disagreements",
}
TARGET_SECONDS = 1.0
TARGET_SPEEDUP = 10.0

# Id kinds: each kind's ids are distinct from every other kind's.
KIND_PROMPT, KIND_RESPONSE, KIND_PAIR, KIND_LABEL = 1, 2, 3, 4
KIND_ROW_LABELS, KIND_ROW_SET, KIND_ROW_RETAG = 5, 6, 7

VOCABULARY = (
    "the model should answer clearly and cite its sources when the question needs facts "
    "a careful reply explains each step checks the result and admits what it does not know "
    "refuse harmful requests politely offer safer alternatives keep private data private "
    "use plain language short sentences concrete examples and avoid needless jargon or hedging "
    "consider the user's goal context constraints risks benefits and likely follow-up questions"
)


# -- synthetic data ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Prompts:
    ids: pa.Array  # prompt_id, one per prompt
    texts: pa.Array
    messages: pa.Array
    family: np.ndarray  # index into FAMILIES


@dataclass(frozen=True)
class Dataset:
    labels: pa.Table
    prompt_appends: list[pa.Table]  # appended in this order: their created_at order matters
    prompts: int
    pairs: int


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a bijection on uint64, so distinct inputs give distinct outputs."""
    z = x + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


_HEX_DIGITS = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def hex_ids(kind: int, index: np.ndarray) -> tuple[pa.Array, np.ndarray]:
    """sha256-like 64-hex-digit ids of ``index`` (unique per kind and index), built without a Python loop.

    Also returns each id's leading 64-bit word: comparing those compares the ids as strings.
    """
    n = len(index)
    if n * 64 >= 2**31:
        raise ValueError("too many ids for one string array")
    words = np.empty((n, 4), dtype=np.uint64)
    words[:, 0] = _mix64(index.astype(np.uint64) ^ (np.uint64(kind) << np.uint64(56)))
    for k in range(1, 4):
        words[:, k] = _mix64(words[:, k - 1] + np.uint64(k))
    raw = words.astype(">u8").view(np.uint8).reshape(n, 32)
    chars = np.empty((n, 64), dtype=np.uint8)
    chars[:, 0::2] = _HEX_DIGITS[raw >> 4]
    chars[:, 1::2] = _HEX_DIGITS[raw & 15]
    offsets = np.arange(0, 64 * (n + 1), 64, dtype=np.int32)
    ids = pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(chars.reshape(-1)))
    return ids, words[:, 0]


def text_pool(rng: np.random.Generator) -> pa.Array:
    """A few thousand texts of 3 to 150 words (about 15 to 900 characters)."""
    lengths = rng.integers(3, 150, size=TEXT_POOL)
    words = np.array(VOCABULARY.split())
    return pa.array([" ".join(words[rng.integers(0, len(words), size=n)]) for n in lengths], pa.string())


def _join(*parts: pa.Array | str) -> pa.Array:
    return pc.binary_join_element_wise(*parts, "")


def make_prompts(rng: np.random.Generator, pool: pa.Array, n: int) -> Prompts:
    ids, _ = hex_ids(KIND_PROMPT, np.arange(n))
    family = rng.choice(len(FAMILIES), size=n, p=FAMILY_WEIGHTS / FAMILY_WEIGHTS.sum())
    body = pool.take(pa.array(rng.integers(0, len(pool), size=n)))
    texts = _join("Question ", pc.utf8_slice_codeunits(ids, 0, 8), ": ", body, "?")
    # The JSON messages_json() writes; the pool's words need no escaping.
    messages = _join('[{"role": "user", "content": "', texts, '"}]')
    return Prompts(ids=ids, texts=texts, messages=messages, family=family)


def prompt_rows(
    prompts: Prompts, which: np.ndarray, kind: int, prompt_set: str, family: np.ndarray | None
) -> pa.Table:
    """``prompts`` rows for the prompts ``which``, as one prompt set (family None: no family)."""
    n = len(which)
    take = pa.array(which)
    row_ids, _ = hex_ids(kind, which)
    if family is None:
        families = pa.nulls(n, pa.string())
        source_ids = pa.nulls(n, pa.string())
    else:
        families = pa.array(np.array(FAMILIES, dtype=object)[family], pa.string())
        source_ids = _join(f"{prompt_set}-", pc.cast(take, pa.string()))
    columns = {
        "row_id": row_ids,
        "prompt_id": prompts.ids.take(take),
        "prompt_set": pa.array(np.full(n, prompt_set, dtype=object), pa.string()),
        "source_id": source_ids,
        "family": families,
        "text": prompts.texts.take(take),
        "messages": prompts.messages.take(take),
    }
    return pa.table(columns, schema=_data_schema("prompts"))


def _data_schema(table: str) -> pa.Schema:
    """The table's columns less ``run_id`` and ``created_at``, which Store.append stamps."""
    return pa.schema([f for f in table_spec(table).schema if f.name not in ("run_id", "created_at")])


def annotators_per_pair(rng: np.random.Generator, n_rows: int) -> np.ndarray:
    """1 to 5 annotators per pair, summing to exactly ``n_rows`` (the last pair is cut short)."""
    mean = float(np.dot(ANNOTATORS_PER_PAIR, ANNOTATORS_PER_PAIR_P))
    draws = int(n_rows / mean * 1.5) + 64
    k = rng.choice(ANNOTATORS_PER_PAIR, size=draws, p=ANNOTATORS_PER_PAIR_P)
    total = np.cumsum(k)
    if total[-1] < n_rows:
        raise RuntimeError("not enough pairs drawn")
    n_pairs = int(np.searchsorted(total, n_rows)) + 1
    k = k[:n_pairs].copy()
    k[-1] -= int(total[n_pairs - 1]) - n_rows
    return k


def pair_prompts(rng: np.random.Generator, family: np.ndarray, n_pairs: int) -> np.ndarray:
    """Each pair's prompt: labelled families only, each covering a different share of its prompts."""
    labelled = family < len(FAMILIES) - UNLABELLED_FAMILIES
    share = np.linspace(0.35, 0.95, len(FAMILIES))[family]
    eligible = np.flatnonzero(labelled & (rng.random(len(family)) < share))
    return rng.choice(eligible, size=n_pairs)


def _annotators(rng: np.random.Generator, per_pair: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(pair, annotator) per label row: distinct annotators within a pair, uneven workloads.

    A pair's annotators are start + j * step (mod 25) for j < 5: distinct for any step in 1..24.
    """
    n_pairs, n_rows = len(per_pair), int(per_pair.sum())
    pair = np.repeat(np.arange(n_pairs), per_pair)
    slot = np.arange(n_rows) - np.repeat(np.cumsum(per_pair) - per_pair, per_pair)
    workload = np.linspace(3.0, 1.0, len(ANNOTATORS))
    start = rng.choice(len(ANNOTATORS), size=n_pairs, p=workload / workload.sum())
    step = rng.integers(1, len(ANNOTATORS), size=n_pairs)
    return pair, (start[pair] + slot * step[pair]) % len(ANNOTATORS)


def make_labels(
    rng: np.random.Generator, pool: pa.Array, prompts: Prompts, n_rows: int
) -> tuple[pa.Table, int]:
    """``n_rows`` human label rows (every data column of ``human_labels``) and the number of pairs."""
    per_pair = annotators_per_pair(rng, n_rows)
    n_pairs = len(per_pair)
    prompt_of_pair = pair_prompts(rng, prompts.family, n_pairs)
    pair, annotator = _annotators(rng, per_pair)
    truth = rng.choice(3, size=n_pairs, p=TRUE_VOTE_P)[pair]
    wrong = (truth + rng.integers(1, 3, size=n_rows)) % 3
    vote = np.where(rng.random(n_rows) < ANNOTATOR_ACCURACY, truth, wrong)  # 0 first, 1 second, 2 tie
    swap = rng.random(n_rows) < 0.5  # shown second-id first
    order = rng.permutation(n_rows)  # an export's rows are not grouped by pair
    pair, annotator, vote, swap = pair[order], annotator[order], vote[order], swap[order]

    # Two responses per pair: 2j and 2j + 1; "first" is the one with the smaller id.
    response_ids, lead = hex_ids(KIND_RESPONSE, np.arange(2 * n_pairs))
    body = pool.take(pa.array(rng.integers(0, len(pool), size=2 * n_pairs)))
    response_texts = _join("(", pc.utf8_slice_codeunits(response_ids, 0, 6), ") ", body)
    first = 2 * np.arange(n_pairs) + (lead[0::2] > lead[1::2])
    second = 4 * np.arange(n_pairs) + 1 - first
    first_row, second_row = first[pair], second[pair]
    a_index = pa.array(np.where(swap, second_row, first_row))
    b_index = pa.array(np.where(swap, first_row, second_row))
    preferred = pa.array(np.where(vote == 0, first_row, second_row), mask=vote == 2)
    choice = np.where(vote == 2, 2, np.where((vote == 0) != swap, 0, 1))

    label_ids, _ = hex_ids(KIND_LABEL, np.arange(n_rows))
    pair_ids, _ = hex_ids(KIND_PAIR, np.arange(n_pairs))
    confidence = np.round(rng.uniform(0.5, 1.0, size=n_rows), 2)
    commented = rng.random(n_rows) < 0.02
    columns = {
        "label_id": label_ids,
        "pair_id": pair_ids.take(pa.array(pair)),
        "prompt_id": prompts.ids.take(pa.array(prompt_of_pair[pair])),
        "response_a_id": response_ids.take(a_index),
        "response_b_id": response_ids.take(b_index),
        "response_a": response_texts.take(a_index),
        "response_b": response_texts.take(b_index),
        "choice": pa.array(CHOICES).take(pa.array(choice)),
        "preferred_id": response_ids.take(preferred),
        "vote": pa.array(VOTES).take(pa.array(vote)),
        "annotator": pa.array(ANNOTATORS).take(pa.array(annotator)),
        "confidence": pa.array(confidence, mask=rng.random(n_rows) < 0.1),
        "comment": pc.if_else(pa.array(commented), "unsure: both responses are close", None),
        "source_format": pa.array(np.full(n_rows, "charter", dtype=object), pa.string()),
        "source_file": pa.array(np.full(n_rows, "/bench/synthetic-labels.jsonl", dtype=object), pa.string()),
        "source_sha256": pa.array(np.full(n_rows, "0" * 64, dtype=object), pa.string()),
        "source_row": pa.array(np.arange(1, n_rows + 1)),
    }
    schema = _data_schema("human_labels")
    # Columns only the review bench fills (which response it showed first, from which queue): NULL.
    columns |= {
        name: pa.nulls(n_rows, schema.field(name).type) for name in schema.names if name not in columns
    }
    return pa.table(columns, schema=schema), n_pairs


def make_dataset(n_rows: int, seed: int = SEED) -> Dataset:
    rng = np.random.default_rng(seed)
    pool = text_pool(rng)
    n_prompts = max(len(FAMILIES) * 10, round(n_rows * PROMPTS_PER_LABEL))
    prompts = make_prompts(rng, pool, n_prompts)
    labels, n_pairs = make_labels(rng, pool, prompts, n_rows)
    everyone = np.arange(n_prompts)
    labelled = np.unique(pc.index_in(labels["prompt_id"], value_set=prompts.ids).to_numpy())
    retagged = np.sort(rng.choice(n_prompts, size=int(n_prompts * RETAGGED_SHARE), replace=False))
    appends = [
        # As an import writes them: the label file's prompts have no family, and come first.
        prompt_rows(prompts, labelled, KIND_ROW_LABELS, "labels/synthetic-labels", None),
        prompt_rows(prompts, everyone, KIND_ROW_SET, "bench-prompts", prompts.family),
        # A later prompt set files some prompts under another family: the earliest family wins.
        prompt_rows(prompts, retagged, KIND_ROW_RETAG, "bench-retagged", (prompts.family[retagged] + 1) % 12),
    ]
    return Dataset(labels=labels, prompt_appends=appends, prompts=n_prompts, pairs=n_pairs)


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
    dedupe_seconds: float
    dedupe_added: int


def time_import(store: Store, data: Dataset) -> ImportFigures:
    for table in data.prompt_appends:
        store.append("prompts", table, RUN_ID)
    seconds, added = timed(lambda: store.append("human_labels", data.labels, RUN_ID))
    if added != data.labels.num_rows:
        raise AssertionError(f"import added {added} of {data.labels.num_rows} rows")
    dedupe_seconds, dedupe_added = timed(lambda: store.append("human_labels", data.labels, RUN_ID))
    if dedupe_added != 0:
        raise AssertionError(f"re-importing the same labels added {dedupe_added} rows (expected 0)")
    return ImportFigures(seconds, data.labels.num_rows / seconds, dedupe_seconds, dedupe_added)


def time_duckdb(store: Store) -> tuple[float, dict[str, Timing], dict[str, QueryResult]]:
    """Catalog-open time, then each audit query's timing and result through the read-only path."""
    timings: dict[str, Timing] = {}
    results: dict[str, QueryResult] = {}
    with contextlib.ExitStack() as stack:
        open_s, con = timed(lambda: stack.enter_context(readonly_connection(store)))
        for name, query in QUERIES.items():
            timings[name], results[name] = best_of(lambda query=query: execute(con, query))
    return open_s, timings, results


# -- the same computations in pandas --------------------------------------------------------------


@dataclass(frozen=True)
class Frames:
    human_labels: pd.DataFrame
    prompts: pd.DataFrame


# The columns the three computations read: what DuckDB's scans read too.
LABEL_COLUMNS = ("pair_id", "prompt_id", "annotator", "vote", "confidence", "created_at", "source_row")
PROMPT_COLUMNS = ("prompt_id", "family", "text", "created_at")


def load_frames(store: Store) -> Frames:
    """The store's labels and prompts as DataFrames, only the columns the computations use."""
    if store.count("ai_labels"):
        raise AssertionError("the pandas side assumes no AI labels (the benchmark writes none)")

    def read(table: str, columns: tuple[str, ...]) -> pd.DataFrame:
        files = [str(f) for f in store.files(table)]
        return pd.read_parquet(files, columns=list(columns))

    return Frames(human_labels=read("human_labels", LABEL_COLUMNS), prompts=read("prompts", PROMPT_COLUMNS))


def pd_prompt_families(prompts: pd.DataFrame) -> pd.DataFrame:
    """``prompt_families``: each prompt's earliest non-null family (or '(none)') and earliest text."""
    ordered = prompts.sort_values("created_at", kind="stable")
    text = ordered.drop_duplicates("prompt_id")[["prompt_id", "text"]]
    family = ordered.dropna(subset=["family"]).drop_duplicates("prompt_id")[["prompt_id", "family"]]
    families = text.merge(family, on="prompt_id", how="left")
    families["family"] = families["family"].fillna("(none)")
    return families


def pd_label_votes(frames: Frames) -> pd.DataFrame:
    """``label_votes`` for human labels: the stored orientation-free vote, no texts, no family."""
    return frames.human_labels[list(LABEL_COLUMNS)]


def pd_human_votes(votes: pd.DataFrame) -> pd.DataFrame:
    """``human_votes``: each annotator's latest vote per pair (later time, then later row, wins)."""
    ordered = votes.sort_values(["created_at", "source_row"], kind="stable")
    latest = ordered.drop_duplicates(["pair_id", "annotator"], keep="last")
    return latest[["pair_id", "annotator", "prompt_id", "vote", "confidence"]].reset_index(drop=True)


def _agreement_stats(both: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    columns = {"agree": both["vote_1"] == both["vote_2"]}
    for vote in VOTES:
        columns[f"1_{vote}"] = both["vote_1"] == vote
        columns[f"2_{vote}"] = both["vote_2"] == vote
    flags = pd.DataFrame(columns).astype("float64")
    if keys:
        grouped = flags.groupby([both[k] for k in keys], sort=False)
        stats = grouped.mean().assign(pairs=grouped.size()).reset_index()
    else:
        stats = flags.mean().to_frame().T.assign(pairs=len(flags), annotator_1="(all)", annotator_2="(all)")
    expected = sum(stats[f"1_{vote}"] * stats[f"2_{vote}"] for vote in VOTES)
    denominator = (1 - expected).where(1 - expected != 0)
    return pd.DataFrame(
        {
            "annotator_1": stats["annotator_1"],
            "annotator_2": stats["annotator_2"],
            "pairs": stats["pairs"].astype("int64"),
            "agreement": stats["agree"].round(4),
            "expected_agreement": expected.round(4),
            "cohen_kappa": ((stats["agree"] - expected) / denominator).round(4),
        }
    )


def pd_human_agreement(frames: Frames) -> pd.DataFrame:
    votes = pd_human_votes(pd_label_votes(frames))[["pair_id", "annotator", "vote"]]
    both = votes.merge(votes, on="pair_id", suffixes=("_1", "_2"))
    both = both[both["annotator_1"] < both["annotator_2"]]
    pooled, per_pair = _agreement_stats(both, []), _agreement_stats(both, ["annotator_1", "annotator_2"])
    table = pd.concat([pooled, per_pair], ignore_index=True)
    table["_all"] = table["annotator_1"] == "(all)"
    keys = ["_all", "pairs", "annotator_1", "annotator_2"]
    ordered = table.sort_values(keys, ascending=[False, False, True, True])
    return ordered.drop(columns="_all").reset_index(drop=True)


def pd_coverage_ledger(frames: Frames) -> pd.DataFrame:
    prompt_families = pd_prompt_families(frames.prompts)[["prompt_id", "family"]]
    families = prompt_families.groupby("family").size().rename("prompts").reset_index()
    per_prompt = pd_label_votes(frames).groupby("prompt_id").size().rename("labels").reset_index()
    labelled = (
        per_prompt.merge(prompt_families, on="prompt_id")
        .assign(source="human")
        .groupby(["family", "source"])
        .agg(labelled_prompts=("prompt_id", "size"), labels=("labels", "sum"))
        .reset_index()
    )
    ledger = families.merge(pd.DataFrame({"source": SOURCES}), how="cross").merge(
        labelled, on=["family", "source"], how="left"
    )
    ledger[["labelled_prompts", "labels"]] = ledger[["labelled_prompts", "labels"]].fillna(0).astype("int64")
    ledger["coverage"] = (ledger["labelled_prompts"] / ledger["prompts"]).round(4)
    ordered = ledger.sort_values(["coverage", "family", "source"]).reset_index(drop=True)
    return ordered[["family", "source", "prompts", "labelled_prompts", "labels", "coverage"]]


def pd_disagreements(frames: Frames) -> pd.DataFrame:
    votes = pd_human_votes(pd_label_votes(frames))
    counts = pd.DataFrame({f"votes_{vote}": votes["vote"] == vote for vote in VOTES}).astype("int64")
    grouped = counts.groupby(votes["pair_id"])
    distinct = votes.groupby("pair_id")["vote"].nunique()
    prompt = votes.groupby("pair_id")["prompt_id"].first()
    per_pair = grouped.sum().assign(annotators=grouped.size(), distinct=distinct, prompt_id=prompt)
    split = per_pair[(per_pair["annotators"] >= 2) & (per_pair["distinct"] > 1)].drop(columns="distinct")
    table = split.reset_index()
    families = pd_prompt_families(frames.prompts)[["prompt_id", "family"]]
    table = table.merge(families, on="prompt_id", how="left")
    table["family"] = table["family"].fillna("(none)")
    majority = table[[f"votes_{vote}" for vote in VOTES]].max(axis=1)
    table["majority_share"] = (majority / table["annotators"]).round(4)
    table = table.sort_values(["majority_share", "annotators", "pair_id"], ascending=[True, False, True])
    counted = ["annotators", "votes_first", "votes_second", "votes_tie", "majority_share"]
    return table[["pair_id", "prompt_id", "family", *counted]].reset_index(drop=True)


PANDAS_QUERIES: dict[str, Callable[[Frames], pd.DataFrame]] = {
    "human_agreement": pd_human_agreement,
    "coverage_ledger": pd_coverage_ledger,
    "disagreements": pd_disagreements,
}


def time_pandas(
    store: Store, frames: Frames
) -> tuple[dict[str, Timing], dict[str, Timing], dict[str, pd.DataFrame]]:
    """Each computation from the store's files (as DuckDB runs) and from frames already in memory."""
    from_store: dict[str, Timing] = {}
    in_memory: dict[str, Timing] = {}
    results: dict[str, pd.DataFrame] = {}
    for name, compute in PANDAS_QUERIES.items():
        from_store[name], _ = best_of(lambda compute=compute: compute(load_frames(store)))
        in_memory[name], results[name] = best_of(lambda compute=compute: compute(frames))
    return from_store, in_memory, results


# -- cross-check --------------------------------------------------------------------------------------


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(f"DuckDB and pandas disagree: {message}")


def cross_check(duck: dict[str, QueryResult], pandas: dict[str, pd.DataFrame]) -> dict[str, Any]:
    """Assert that both sides computed the same thing; returns the figures compared."""
    agreement = duck["human_agreement"].records()
    duck_all = next(r for r in agreement if r["annotator_1"] == "(all)")
    pd_agreement = pandas["human_agreement"]
    pd_all = pd_agreement[pd_agreement["annotator_1"] == "(all)"].iloc[0]
    _require(abs(duck_all["cohen_kappa"] - pd_all["cohen_kappa"]) <= 1e-4, "kappa of the '(all)' row")
    _require(duck_all["pairs"] == pd_all["pairs"], "pairs of the '(all)' row")
    duck_pairs = {(r["annotator_1"], r["annotator_2"]): r["pairs"] for r in agreement}
    pd_rows = pd_agreement[["annotator_1", "annotator_2", "pairs"]].to_numpy()
    pd_pairs = {(a, b): int(n) for a, b, n in pd_rows}
    _require(len(duck_pairs) == len(pd_pairs) == len(agreement), "number of annotator-pair rows")
    _require(duck_pairs == pd_pairs, "pairs per annotator pair")

    coverage = duck["coverage_ledger"].records()
    duck_coverage = {(r["family"], r["source"]): (r["labelled_prompts"], r["coverage"]) for r in coverage}
    pd_ledger = pandas["coverage_ledger"][["family", "source", "labelled_prompts", "coverage"]].to_numpy()
    pd_coverage = {(f, s): (int(n), float(c)) for f, s, n, c in pd_ledger}
    _require(duck_coverage == pd_coverage, "coverage per family and source")
    zero = sorted({f for (f, s), (n, _) in duck_coverage.items() if s == "human" and n == 0})
    _require(len(zero) >= UNLABELLED_FAMILIES, f"families without human labels: {zero}")

    duck_split = [r[0] for r in duck["disagreements"].rows]
    pd_split = pandas["disagreements"]["pair_id"].tolist()
    _require(len(duck_split) == len(pd_split), "number of disagreement pairs")
    _require(set(duck_split) == set(pd_split), "the disagreement pairs")
    return {
        "kappa_all_duckdb": duck_all["cohen_kappa"],
        "kappa_all_pandas": float(pd_all["cohen_kappa"]),
        "agreement_all": duck_all["agreement"],
        "annotator_pairs": len(agreement) - 1,
        "coverage_rows": len(coverage),
        "families_without_human_labels": zero,
        "disagreement_pairs": len(duck_split),
        "disagreement_order_equal": duck_split == pd_split,
    }


# -- report -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QueryFigures:
    duckdb_cold_ms: float
    duckdb_best_ms: float
    pandas_store_best_ms: float
    pandas_memory_best_ms: float
    speedup: float  # pandas from the store / DuckDB: the like-for-like ratio the target is about
    speedup_in_memory: float  # pandas on frames already loaded / DuckDB: favours pandas
    under_1s: bool
    at_least_10x: bool


def query_figures(duck: Timing, pandas_store: Timing, pandas_memory: Timing) -> QueryFigures:
    speedup = pandas_store.best_s / duck.best_s
    return QueryFigures(
        duckdb_cold_ms=duck.cold_s * 1000,
        duckdb_best_ms=duck.best_s * 1000,
        pandas_store_best_ms=pandas_store.best_s * 1000,
        pandas_memory_best_ms=pandas_memory.best_s * 1000,
        speedup=speedup,
        speedup_in_memory=pandas_memory.best_s / duck.best_s,
        under_1s=duck.best_s < TARGET_SECONDS,
        at_least_10x=speedup >= TARGET_SPEEDUP,
    )


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


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
        f"pyarrow {env['pyarrow']}, numpy {env['numpy']}\n"
    )
    _figure("data generation (numpy)", f"{report['generate_s']:.2f} s")
    _figure("import (Store.append)", f"{imp['seconds']:.2f} s", f"{imp['rows_per_s']:,.0f} rows/s")
    _figure(
        "re-import (dedupe path)", f"{imp['dedupe_seconds']:.2f} s", f"{imp['dedupe_added']:,} rows added"
    )
    _figure("catalog open (read-only)", f"{report['catalog_open_s'] * 1000:.1f} ms")
    _figure("pandas load (Parquet)", f"{report['pandas_load_s']:.2f} s", "the columns the queries read")
    print()
    header = (
        f"{'query':<17}{'duckdb cold':>12}{'duckdb best':>12}{'pandas store':>13}{'speed-up':>9}"
        f"{'pandas memory':>14}{'speed-up':>9}{'< 1 s':>7}{'>= 10x':>8}"
    )
    print(header)
    print("-" * len(header))
    for name, q in report["queries"].items():
        print(
            f"{name:<17}{q['duckdb_cold_ms']:>10.0f}ms{q['duckdb_best_ms']:>10.0f}ms"
            f"{q['pandas_store_best_ms']:>11.0f}ms{q['speedup']:>8.1f}x"
            f"{q['pandas_memory_best_ms']:>12.0f}ms{q['speedup_in_memory']:>8.1f}x"
            f"{_verdict(q['under_1s']):>7}{_verdict(q['at_least_10x']):>8}"
        )
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
        f"best = best of {REPEATS} runs; cold = first run; speed-up = pandas best / duckdb best.\n"
        "pandas store: read the needed columns from the store's Parquet files and compute, as DuckDB does "
        "(the targets use this); pandas memory: compute on DataFrames already loaded."
    )


def environment() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "duckdb": duckdb.__version__,
        "pandas": pd.__version__,
        "pyarrow": pa.__version__,
        "numpy": np.__version__,
    }


def run(n_rows: int) -> dict[str, Any]:
    generate_s, data = timed(lambda: make_dataset(n_rows))
    root = tempfile.mkdtemp(prefix="charter-bench-")
    try:
        store = Store.create(root)
        imported = time_import(store, data)
        sizes = {"rows": n_rows, "pairs": data.pairs, "prompts": data.prompts, "seed": SEED}
        del data  # the Parquet files are the source from here on
        catalog_open_s, duck_timings, duck_results = time_duckdb(store)
        load_s, frames = timed(lambda: load_frames(store))
        pandas_store, pandas_memory, pandas_results = time_pandas(store, frames)
        checked = cross_check(duck_results, pandas_results)
        return {
            "environment": environment(),
            "data": sizes,
            "generate_s": generate_s,
            "import": asdict(imported),
            "catalog_open_s": catalog_open_s,
            "pandas_load_s": load_s,
            "queries": {
                name: asdict(query_figures(duck_timings[name], pandas_store[name], pandas_memory[name]))
                for name in QUERIES
            },
            "cross_check": checked,
        }
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rows", type=int, default=DEFAULT_ROWS, help="labels to generate (default 1,000,000)"
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures as JSON to PATH")
    args = parser.parse_args(argv)
    if args.rows < 1000:
        parser.error("--rows must be at least 1000")
    report = run(args.rows)
    print_report(report)
    write_figures(report, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
