"""The audit benchmark's synthetic store contents, generated with numpy and a fixed seed.

About 0.04 * N prompts across 12 families (the last two never labelled, so the coverage ledger
has zeros), about N / 2.8 pairs of two responses, 25 annotators, 1 to 5 annotators per pair (so
most pairs have two or more), votes first/second/tie with two annotators agreeing about 75% of
the time, and each label shown in a random order (``choice`` and ``preferred_id`` agree).
Response texts run from about 15 to 900 characters (about 450 on average); every label of a
pair repeats them, as the store does.

Every row's choices are drawn first, as numbers (:class:`LabelPlan`); the Arrow rows are built
from them one append at a time (:func:`label_chunk`), because ten million labels with their
texts are about 14 GB as one Arrow table, and an import appends a file at a time anyway.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tasks.store.schema import table_spec

SEED = 20_240_611
LABELS_PER_APPEND = 1_000_000  # one import file: 10M labels are appended as 10 files

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


@dataclass(frozen=True)
class Prompts:
    ids: pa.Array  # prompt_id, one per prompt
    texts: pa.Array
    messages: pa.Array
    family: np.ndarray  # index into FAMILIES


@dataclass(frozen=True)
class LabelPlan:
    """Every label row's draws as numbers (per row, in stored order) and the per-pair ones."""

    pair: np.ndarray
    annotator: np.ndarray
    vote: np.ndarray  # 0 first, 1 second, 2 tie
    swap: np.ndarray  # shown second-id first
    confidence: np.ndarray
    confidence_missing: np.ndarray
    commented: np.ndarray
    prompt_of_pair: np.ndarray
    first_response: np.ndarray  # per pair: the response (index) with the smaller id
    response_body: np.ndarray  # per response: its text's index in the pool
    pair_ids: pa.Array
    response_ids: pa.Array

    @property
    def rows(self) -> int:
        return len(self.pair)

    @property
    def pairs(self) -> int:
        return len(self.pair_ids)


@dataclass(frozen=True)
class Dataset:
    pool: pa.Array
    prompts: Prompts
    labels: LabelPlan
    prompt_appends: list[pa.Table]  # appended in this order: their created_at order matters

    def label_chunks(self) -> list[tuple[int, int]]:
        """The row ranges appended one file each."""
        starts = range(0, self.labels.rows, LABELS_PER_APPEND)
        return [(start, min(start + LABELS_PER_APPEND, self.labels.rows)) for start in starts]


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


def plan_labels(rng: np.random.Generator, pool: pa.Array, prompts: Prompts, n_rows: int) -> LabelPlan:
    """Every draw behind ``n_rows`` human labels, rows in an export's order (not grouped by pair)."""
    per_pair = annotators_per_pair(rng, n_rows)
    n_pairs = len(per_pair)
    prompt_of_pair = pair_prompts(rng, prompts.family, n_pairs)
    pair, annotator = _annotators(rng, per_pair)
    truth = rng.choice(3, size=n_pairs, p=TRUE_VOTE_P)[pair]
    wrong = (truth + rng.integers(1, 3, size=n_rows)) % 3
    vote = np.where(rng.random(n_rows) < ANNOTATOR_ACCURACY, truth, wrong)
    swap = rng.random(n_rows) < 0.5
    order = rng.permutation(n_rows)
    # Two responses per pair: 2j and 2j + 1; "first" is the one with the smaller id.
    response_ids, lead = hex_ids(KIND_RESPONSE, np.arange(2 * n_pairs))
    pair_ids, _ = hex_ids(KIND_PAIR, np.arange(n_pairs))
    return LabelPlan(
        pair=pair[order],
        annotator=annotator[order],
        vote=vote[order],
        swap=swap[order],
        confidence=np.round(rng.uniform(0.5, 1.0, size=n_rows), 2),
        confidence_missing=rng.random(n_rows) < 0.1,
        commented=rng.random(n_rows) < 0.02,
        prompt_of_pair=prompt_of_pair,
        first_response=2 * np.arange(n_pairs) + (lead[0::2] > lead[1::2]),
        response_body=rng.integers(0, len(pool), size=2 * n_pairs),
        pair_ids=pair_ids,
        response_ids=response_ids,
    )


def label_chunk(data: Dataset, start: int, stop: int) -> pa.Table:
    """Rows ``start:stop`` of ``human_labels`` (every data column), built from the plan."""
    plan, rows = data.labels, slice(start, stop)
    n = stop - start
    pair, vote, swap = plan.pair[rows], plan.vote[rows], plan.swap[rows]
    first = plan.first_response[pair]
    second = 4 * pair + 1 - first  # the pair's other response: 2j + (2j + 1) - first
    a_index = np.where(swap, second, first)
    b_index = np.where(swap, first, second)

    def texts(index: np.ndarray) -> pa.Array:
        ids = plan.response_ids.take(pa.array(index))
        body = data.pool.take(pa.array(plan.response_body[index]))
        return _join("(", pc.utf8_slice_codeunits(ids, 0, 6), ") ", body)

    preferred = pa.array(np.where(vote == 0, first, second), mask=vote == 2)
    choice = np.where(vote == 2, 2, np.where((vote == 0) != swap, 0, 1))
    label_ids, _ = hex_ids(KIND_LABEL, np.arange(start, stop))
    columns = {
        "label_id": label_ids,
        "pair_id": plan.pair_ids.take(pa.array(pair)),
        "prompt_id": data.prompts.ids.take(pa.array(plan.prompt_of_pair[pair])),
        "response_a_id": plan.response_ids.take(pa.array(a_index)),
        "response_b_id": plan.response_ids.take(pa.array(b_index)),
        "response_a": texts(a_index),
        "response_b": texts(b_index),
        "choice": pa.array(CHOICES).take(pa.array(choice)),
        "preferred_id": plan.response_ids.take(preferred),
        "vote": pa.array(VOTES).take(pa.array(vote)),
        "annotator": pa.array(ANNOTATORS).take(pa.array(plan.annotator[rows])),
        "confidence": pa.array(plan.confidence[rows], mask=plan.confidence_missing[rows]),
        "comment": pc.if_else(pa.array(plan.commented[rows]), "unsure: both responses are close", None),
        "source_format": pa.array(np.full(n, "charter", dtype=object), pa.string()),
        "source_file": pa.array(np.full(n, "/bench/synthetic-labels.jsonl", dtype=object), pa.string()),
        "source_sha256": pa.array(np.full(n, "0" * 64, dtype=object), pa.string()),
        "source_row": pa.array(np.arange(start + 1, stop + 1)),
    }
    schema = _data_schema("human_labels")
    # Columns only the review bench fills (which response it showed first, from which queue): NULL.
    columns |= {name: pa.nulls(n, schema.field(name).type) for name in schema.names if name not in columns}
    return pa.table(columns, schema=schema)


def make_dataset(n_rows: int, seed: int = SEED) -> Dataset:
    rng = np.random.default_rng(seed)
    pool = text_pool(rng)
    n_prompts = max(len(FAMILIES) * 10, round(n_rows * PROMPTS_PER_LABEL))
    prompts = make_prompts(rng, pool, n_prompts)
    labels = plan_labels(rng, pool, prompts, n_rows)
    everyone = np.arange(n_prompts)
    labelled = np.unique(labels.prompt_of_pair)
    retagged = np.sort(rng.choice(n_prompts, size=int(n_prompts * RETAGGED_SHARE), replace=False))
    appends = [
        # As an import writes them: the label file's prompts have no family, and come first.
        prompt_rows(prompts, labelled, KIND_ROW_LABELS, "labels/synthetic-labels", None),
        prompt_rows(prompts, everyone, KIND_ROW_SET, "bench-prompts", prompts.family),
        # A later prompt set files some prompts under another family: the earliest family wins.
        prompt_rows(prompts, retagged, KIND_ROW_RETAG, "bench-retagged", (prompts.family[retagged] + 1) % 12),
    ]
    return Dataset(pool=pool, prompts=prompts, labels=labels, prompt_appends=appends)
