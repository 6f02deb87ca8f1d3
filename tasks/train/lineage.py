"""Checkpoint lineage: which run, base model, preference set, constitutions and labels made a checkpoint.

Every checkpoint directory charter writes carries ``charter-lineage.json``; ``charter lineage
DIR`` prints it. The label counts come from the preference set's own rows, so they say what
the model actually saw (after any confidence filter), not what the store held. Its
``identity`` (kind-specific: set, base model, settings, ...) is what decides whether asking
for a checkpoint again may reuse this one.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tasks.backends.models import ResolvedModel, resolve_model
from tasks.core.errors import CharterError
from tasks.core.files import write_atomically
from tasks.core.hashing import content_id
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
    identity: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The lineage of a checkpoint trained on ``rows`` (a preference set's rows, as used)."""
    return {
        "kind": kind,
        "identity": as_recorded(identity or {}),
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


def as_recorded(data: Any) -> Any:
    """``data`` as it reads back from a lineage file (tuples become lists, keys strings), to compare."""
    return json.loads(json.dumps(data, sort_keys=True, default=str))


def reusable_checkpoint(
    path: Path, kind: str, identity: dict[str, Any], *, owned: bool
) -> dict[str, Any] | None:
    """The lineage of the finished checkpoint at ``path`` if it was made from exactly ``identity``.

    None means train: nothing is there, or a ``kind`` checkpoint made from another set, base or
    settings (the new one replaces it when it is finished, as a TRL ``output_dir`` is written
    over). A checkpoint of another kind, or a non-empty folder that is no checkpoint, is refused
    before any work, unless charter ``owned`` the folder (``STORE/checkpoints``, named by the
    identity's hash), where leftovers of an older charter are simply replaced.
    """
    if not path.is_dir() or not any(path.iterdir()):
        return None
    if not (path / LINEAGE_FILE).is_file():
        if owned:
            return None
        raise CharterError(
            f"{path} is a non-empty folder that holds no charter checkpoint (no {LINEAGE_FILE}); "
            "not overwriting it: choose another -o"
        )
    record = read_lineage(path)
    if record["kind"] != kind:
        raise CharterError(
            f"{path} holds a {record['kind']} checkpoint; not replacing it with a {kind} one: "
            "choose another -o"
        )
    return record if record.get("identity") == as_recorded(identity) else None


def write_json_atomically(path: Path, data: Any) -> Path:
    """Replace ``path`` with readable JSON atomically: a killed writer leaves the old file or none."""
    return write_atomically(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


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


def policy_start(model: str | None) -> tuple[ResolvedModel, dict[str, Any]]:
    """What a policy trainer's ``model`` loads, and what its lineage says about where it started.

    A charter checkpoint (its folder, or the ``model/`` folder inside it: an SFT checkpoint, for
    RL-CAI) starts training from the checkpoint's merged model; the lineage then names it
    (``start_checkpoint``, its run and kind). Its model id hashes the checkpoint's identity, not
    the folder (two SFT runs of one base have equal configs and weight sizes), so a new start
    trains a new checkpoint. Anything else is resolved as ``--model`` always is.
    """
    if model is not None:
        folder = Path(model).expanduser()
        checkpoint = next((f for f in (folder, folder.parent) if (f / LINEAGE_FILE).is_file()), None)
        if checkpoint is not None and (checkpoint == folder or folder.name == "model"):
            record = read_lineage(checkpoint)
            weights = checkpoint / "model"
            if not (weights / "config.json").is_file():
                raise CharterError(
                    f"{checkpoint} is a {record['kind']} checkpoint with no model/ folder: a policy "
                    "starts from a base model or an sft, dpo, ppo or grpo checkpoint"
                )
            kind = record["kind"]
            digest = content_id(f"checkpoint_{kind}", record["identity"])[:12]
            start = {
                "start_checkpoint": str(checkpoint.resolve()),
                "start_checkpoint_kind": kind,
                "start_checkpoint_run_id": record["run_id"],
                "start_checkpoint_base_model": record["base_model"],
            }
            return ResolvedModel(path=str(weights.resolve()), model_id=f"{kind}-checkpoint@{digest}"), start
    return resolve_model(model), {}
