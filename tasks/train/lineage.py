"""Checkpoint lineage: which run, base model, preference set, constitutions and labels made a checkpoint.

Every checkpoint directory charter writes carries ``charter-lineage.json``; ``charter lineage
DIR`` prints it. The label counts come from the preference set's own rows, so they say what
the model actually saw (after any confidence filter), not what the store held.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tasks.core.errors import CharterError
from tasks.store.runs import code_version

SCOREBOARD_FILE = "scoreboard.json"
LINEAGE_FILE = "charter-lineage.json"


def lineage_record(
    *,
    kind: str,
    run_id: str,
    base_model: str,
    set_id: str | None,
    rows: Sequence[dict[str, Any]],
    settings: dict[str, Any],
    metrics: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The lineage of a checkpoint trained on ``rows`` (a preference set's rows, as used)."""
    return {
        "kind": kind,
        "run_id": run_id,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "code_version": code_version(),
        "base_model": base_model,
        "preference_set": set_id,
        "pairs": len(rows),
        "pairs_by_source": dict(sorted(Counter(row["decided_by"] for row in rows).items())),
        "labels": len({label for row in rows for label in row["label_ids"]}),
        "constitution_ids": sorted({c for row in rows for c in row["constitution_ids"]}),
        "principle_ids": sorted({p for row in rows for p in row["principle_ids"]}),
        "settings": settings,
        "metrics": metrics or {},
        **(extra or {}),
    }


def write_json_atomically(path: Path, data: Any) -> Path:
    """Write JSON beside ``path`` and rename it in place: a killed writer leaves the old file or none."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
    partial.replace(path)
    return path


def write_lineage(directory: str | Path, record: dict[str, Any]) -> Path:
    return write_json_atomically(Path(directory) / LINEAGE_FILE, record)


def read_lineage(directory: str | Path) -> dict[str, Any]:
    path = Path(directory) / LINEAGE_FILE
    if not path.is_file():
        raise CharterError(f"{directory} is not a charter checkpoint: no {LINEAGE_FILE} in it")
    return json.loads(path.read_text(encoding="utf-8"))


def latest_checkpoint(store_root: str | Path, kinds: tuple[str, ...]) -> Path | None:
    """The most recently finished checkpoint of one of ``kinds`` under ``STORE/checkpoints``."""
    found = [
        (record["created_at"], path)
        for path in sorted((Path(store_root) / "checkpoints").glob("*/"))
        if (path / LINEAGE_FILE).is_file() and (record := read_lineage(path))["kind"] in kinds
    ]
    return max(found)[1] if found else None
