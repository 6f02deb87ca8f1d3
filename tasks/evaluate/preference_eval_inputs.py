"""The pairs a held-out preference evaluation reads, and whether a checkpoint was trained on them.

A held-out source is a label file in any format charter imports (hh-rlhf, charter JSONL, TRL,
...), read by the import's own parsers, so a bad line fails with its file, line and field and
every pair gets the pair id the store would give it; or a preference set in the store (an id
or a unique prefix). Either way each pair becomes a record as the reward model reads one
(:class:`tasks.train.reward_metrics.PreferenceRecord`: conversation, chosen, rejected, target,
weight), plus its ``pair_id`` and ``prompt_id``. A file's rows that are no usable pair (an
empty reply, say: the hh-rlhf test split has some) are left out and reported, each with its
line and field, as ``import-labels --skip-invalid`` does; a file with no usable row fails. A
file's votes are hard: the chosen response's
target is 1 and a tie's 0.5 (a tie has no better response, so accuracies leave it out); a
file that holds several votes on one pair keeps each, and accuracy is measured against each.

``limit`` keeps the pairs with the lowest pair ids. Pair ids are content hashes, so that is a
fixed sample that depends neither on the file's order nor on the other pairs, and a larger
limit only adds pairs.

Overlap: a checkpoint learnt from the preference set its lineage names (``preference_set``:
DPO's pairs, a reward model's, a PPO's reward model's). Every pair of that set counts as
trained on, including the pairs a reward model held out for its own figures: the split is a
hash draw nobody sees, and a held-out evaluation should not share pairs with the data that
made the checkpoint at all. A checkpoint whose lineage names no set (SFT, PPO on rules alone)
cannot be checked by pair id, and says so.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tasks.core.errors import CharterError, InputError, Problem
from tasks.core.jsonl import read_jsonl
from tasks.evaluate.settings import PreferenceEvalSettings
from tasks.store.store import Store

# A record's pair is ``pair_id``; what the reward model reads is PreferenceRecord's fields.
Record = dict[str, Any]


@dataclass(frozen=True)
class HeldOutPairs:
    """The records to evaluate (after the limit) and where they came from."""

    source: str
    """The file's path, or ``set <id>``."""
    records: list[Record]
    total: int
    """Records in the source before the limit."""
    skipped: list[str] = field(default_factory=list)
    """The file's rows left out, each as its located problem."""


@dataclass(frozen=True)
class Overlap:
    """What one checkpoint's training set shares with the held-out records."""

    checkpoint: str
    set_id: str | None
    """The checkpoint's training preference set; None: its lineage names none (not checked)."""
    overlapping: int
    """Held-out records whose pair id is in that set."""

    def as_dict(self) -> dict[str, Any]:
        return {"checkpoint": self.checkpoint, "set_id": self.set_id, "overlapping": self.overlapping}


def detect_format(path: str | Path) -> str:
    """The label format a JSONL file is in, told by its first record's keys (a folder: ``trl``)."""
    if Path(path).is_dir():
        return "trl"
    for line, item in read_jsonl(path):
        if isinstance(item, Problem):
            raise InputError([item])
        keys = set(item) if isinstance(item, dict) else set()
        if {"response_a", "response_b"} <= keys:
            return "charter"
        if {"chosen", "rejected"} <= keys:
            return "trl" if "prompt" in keys else "hh-rlhf"
        raise CharterError(
            f"{path} (line {line}): cannot tell the format from the keys {sorted(keys)}: give --format "
            "(charter: response_a/response_b/choice; hh-rlhf: chosen/rejected; trl: prompt/chosen/rejected)"
        )
    raise CharterError(f"{path}: the file has no labels")


def file_records(path: str | Path, fmt: str | None = None) -> tuple[list[Record], list[str]]:
    """Every usable vote of a label file as a record, and the problems of the rows left out
    (a file with no usable row raises them all)."""
    from tasks.ingest.human_labels import parse_label_file

    parsed = parse_label_file(path, fmt or detect_format(path))
    blocking = parsed.blocking_problems(skip_invalid=True)
    if blocking:
        raise InputError(blocking)
    records = []
    for label, prompt in zip(parsed.labels, parsed.prompts, strict=True):
        a, b = label["response_a"], label["response_b"]
        chosen, rejected = (b, a) if label["choice"] == "b" else (a, b)
        records.append(
            {
                "pair_id": label["pair_id"],
                "prompt_id": label["prompt_id"],
                "prompt": list(prompt.messages),
                "chosen": chosen,
                "rejected": rejected,
                "target": 0.5 if label["choice"] == "tie" else 1.0,
                "weight": 1.0,
                "family": prompt.family,
                "decided_by": None,
            }
        )
    return records, [str(problem) for problem in parsed.problems]


def set_records(store: Store, set_id: str | None) -> tuple[str, list[Record]]:
    """A stored preference set's id and rows as records (its soft targets and weights kept)."""
    from tasks.merge.preference_sets import read_set

    found, rows = read_set(store, set_id)
    return found, [{**row, "prompt": json.loads(row["prompt"])} for row in rows]


def limited(records: Sequence[Mapping[str, Any]], limit: int | None) -> list[Record]:
    """The records of the ``limit`` lowest pair ids (every vote on them), in pair-id order."""
    ordered = sorted(records, key=lambda r: r["pair_id"])  # stable: a pair's votes keep their order
    if limit is None:
        return [dict(r) for r in ordered]
    kept = set(sorted({r["pair_id"] for r in ordered})[:limit])
    return [dict(r) for r in ordered if r["pair_id"] in kept]


def held_out_pairs(source: str, store_root: str | Path, settings: PreferenceEvalSettings) -> HeldOutPairs:
    """The records of ``source``: a label file when such a path exists, else a set id in the store."""
    if Path(source).exists():
        records, skipped = file_records(source, settings.label_format)
        return HeldOutPairs(source, limited(records, settings.limit), len(records), skipped)
    if settings.label_format is not None or "/" in source or Path(source).suffix:
        raise CharterError(f"{source}: no such file (and a preference set id is a hex prefix)")
    set_id, records = set_records(Store.existing(store_root), source)
    return HeldOutPairs(f"set {set_id}", limited(records, settings.limit), len(records))


def overlaps(
    records: Sequence[Mapping[str, Any]],
    checkpoints: Mapping[str, Mapping[str, Any]],
    store_root: str | Path,
    allow: bool,
) -> list[Overlap]:
    """Each checkpoint's overlap with ``records`` (``checkpoints``: path -> lineage).

    Raises, before any model loads, when a checkpoint trained on some of the records and
    ``allow`` is off, or when its set cannot be read from the store to check.
    """
    from tasks.merge.preference_sets import read_set

    held_out = [r["pair_id"] for r in records]
    found = []
    for path, lineage in checkpoints.items():
        set_id = lineage.get("preference_set")  # what it learnt from: see the module docstring
        if set_id is None:
            found.append(Overlap(path, None, 0))
            continue
        try:
            trained = {row["pair_id"] for row in read_set(Store.existing(store_root), set_id)[1]}
        except CharterError as exc:
            if allow:
                found.append(Overlap(path, None, 0))
                continue
            raise CharterError(
                f"cannot check {path} for overlap: its training preference set {set_id[:12]} is not "
                f"readable in {store_root} ({exc}); pass the --store that trained it, or --allow-overlap"
            ) from None
        overlap = Overlap(path, set_id, sum(pair in trained for pair in held_out))
        if overlap.overlapping and not allow:
            raise CharterError(
                f"{overlap.overlapping} of the {len(held_out)} held-out pairs are in the training "
                f"preference set {set_id[:12]} of {path} (same pair id): not a held-out evaluation. "
                "Evaluate other pairs, or pass --allow-overlap to include them anyway"
            )
        found.append(overlap)
    return found
