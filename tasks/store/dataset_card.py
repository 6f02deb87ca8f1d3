"""A dataset card for an exported preference set, in the Hugging Face datasets layout.

A set leaves charter as data a TRL user loads with ``datasets``; the card (``README.md`` with
YAML front matter) travels with it so whoever loads it later knows what it is without the
store: its id, size, which source decided each row, the merge policy that made it, the
constitutions and principles behind its labels, how often people and the AI agreed, and the
two lines that load it into TRL. The front matter's ``configs`` make ``load_dataset(FOLDER)``
find the data file; its ``charter`` block holds the same facts for machines.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from tasks.core.files import write_atomically
from tasks.store.exports import HUB_DATA_FILE

CARD_FILE = "README.md"


def set_facts(set_row: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """What the card says, as plain data: computed from the set's own rows, so it describes what
    was exported, and from its ``preference_sets`` row (policy and counts, stored as JSON)."""
    with_humans = [row for row in rows if row["human_labels"] > 0]
    both = [row for row in with_humans if row["ai_p_chosen"] is not None]
    # The AI agrees with a human-decided row when it also put the chosen response first.
    ai_agrees = [row["ai_p_chosen"] > 0.5 for row in both if row["ai_p_chosen"] != 0.5]
    return {
        "set_id": set_row["set_id"],
        "rows": len(rows),
        "rows_by_source": dict(sorted(Counter(row["decided_by"] for row in rows).items())),
        "families": dict(sorted(Counter(row["family"] or "(none)" for row in rows).items())),
        "mean_target": _mean([row["target"] for row in rows]),
        "mean_weight": _mean([row["weight"] for row in rows]),
        "rows_with_human_labels": len(with_humans),
        "mean_human_agreement": _mean([row["human_agreement"] for row in with_humans]),
        "rows_with_human_and_ai_labels": len(both),
        "ai_agrees_with_human_decision": _mean([float(agree) for agree in ai_agrees]),
        "constitution_ids": sorted({c for row in rows for c in row["constitution_ids"]}),
        "principle_ids": sorted({p for row in rows for p in row["principle_ids"]}),
        "merge_policy": json.loads(set_row["policy"]),
        "merge_counts": json.loads(set_row["counts"]),
    }


def _mean(values: Sequence[float]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


# How each export format is loaded back (the card's "Load it" line).
_LOADERS = {
    "hub": 'train = load_dataset("path/to/this/folder", split="train")  # the configs above find the data',
    "hf": 'train = load_from_disk("path/to/this/folder")  # written by Dataset.save_to_disk',
    "jsonl": 'train = load_dataset("json", data_files="path/to/{data_file}", split="train")',
}


def dataset_card(facts: Mapping[str, Any], fmt: str, data_file: str, style: str) -> str:
    """The card's Markdown: YAML front matter (the datasets layout's ``configs`` pointing at
    ``data_file`` and charter's facts), then the same facts for people and how to load the set
    (written as ``fmt``) in TRL."""
    front = {
        "configs": [{"config_name": "default", "data_files": [{"split": "train", "path": data_file}]}],
        "task_categories": ["text-generation"],
        "tags": ["preference", "dpo", "reward-modeling", "charter"],
        "size_categories": [_size_category(facts["rows"])],
        "charter": dict(facts),
    }
    short_id = facts["set_id"][:12]
    lines = [
        "---",
        yaml.safe_dump(front, sort_keys=False, allow_unicode=True).rstrip(),
        "---",
        "",
        f"# charter preference set {short_id}",
        "",
        f"Preference set `{facts['set_id']}`, merged by charter from human and AI labels: "
        f"{facts['rows']} pairs in TRL's {style} preference format (`prompt`, `chosen`, `rejected`), "
        "with each row's soft target (`target`, P(chosen is better)), its `weight` and its lineage "
        "(`pair_id`, `decided_by`, `label_ids`, `principle_ids`, `constitution_ids`).",
        "",
        "## Rows",
        "",
        _table(("decided by", "rows"), facts["rows_by_source"].items()),
        "",
        _table(("family", "rows"), facts["families"].items()),
        "",
        f"Mean target {facts['mean_target']}, mean weight {facts['mean_weight']}.",
        "",
        "## Agreement",
        "",
        f"- Rows with human labels: {facts['rows_with_human_labels']}; mean majority share of their "
        f"votes: {facts['mean_human_agreement']}.",
        f"- Rows with both human and AI labels: {facts['rows_with_human_and_ai_labels']}; share where "
        f"the AI preferred the response people chose: {facts['ai_agrees_with_human_decision']}.",
        "",
        "## How it was made",
        "",
        "Constitutions: " + (", ".join(f"`{c}`" for c in facts["constitution_ids"]) or "none") + ".",
        "",
        "Principles: " + (", ".join(f"`{p}`" for p in facts["principle_ids"]) or "none") + ".",
        "",
        "Merge policy:",
        "",
        "```json",
        json.dumps(facts["merge_policy"], indent=2, sort_keys=True),
        "```",
        "",
        "Kept and dropped by the merge:",
        "",
        "```json",
        json.dumps(facts["merge_counts"], indent=2, sort_keys=True),
        "```",
        "",
        "## Load it",
        "",
        "```python",
        "from datasets import load_dataset, load_from_disk",
        "from trl import DPOConfig, DPOTrainer",
        "",
        _LOADERS[fmt].format(data_file=data_file),
        "trainer = DPOTrainer(model=..., args=DPOConfig(...), train_dataset=train)",
        "```",
        "",
        "TRL's trainers ignore the lineage columns; a reward model that learns from soft labels "
        "reads `target` and `weight`.",
        "",
    ]
    return "\n".join(lines)


def _size_category(rows: int) -> str:
    """The Hub's size bucket for ``rows`` (n<1K, 1K<n<10K, ...)."""
    for limit, name in (
        (1_000, "n<1K"),
        (10_000, "1K<n<10K"),
        (100_000, "10K<n<100K"),
        (1_000_000, "100K<n<1M"),
    ):
        if rows < limit:
            return name
    return "1M<n<10M"


def _table(header: tuple[str, str], rows: Any) -> str:
    body = [f"| {header[0]} | {header[1]} |", "|---|---:|"]
    body += [f"| {_cell(name)} | {count} |" for name, count in rows]
    return "\n".join(body)


def _cell(text: Any) -> str:
    """A table cell from stored text: a pipe or newline in a family name must not break the table."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def write_card(facts: Mapping[str, Any], output: Path, fmt: str, style: str) -> Path:
    """Write the card of an export at ``output``: inside a folder export (``hub``, ``hf``) as
    ``README.md``, beside a JSONL file as ``NAME.README.md`` (a file's folder may hold others)."""
    if fmt == "jsonl":
        path, data_file = output.with_name(f"{output.stem}.{CARD_FILE}"), output.name
    else:
        path, data_file = output / CARD_FILE, HUB_DATA_FILE if fmt == "hub" else "data-*.arrow"
    return write_atomically(path, dataset_card(facts, fmt, data_file, style))
