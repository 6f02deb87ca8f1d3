"""Bringing users' files into the store: constitutions, prompt sets and human label exports.

Each function validates its whole input before writing anything, so a bad file leaves
the store unchanged, and writes content-addressed rows, so ingesting again adds nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

from tasks.constitution.model import Constitution, load_constitution
from tasks.core.hashing import content_id
from tasks.ingest.human_labels import ImportResult, import_labels, parse_label_file
from tasks.ingest.prompt_sets import load_prompt_set
from tasks.store.runs import RunContext


def ingest_constitution(run: RunContext, path: str | Path) -> Constitution:
    """Store one constitution version and its principles; returns it."""
    constitution = load_constitution(path)
    run.add_input(path)
    cid = constitution.constitution_id
    run.append(
        "constitutions",
        [
            {
                "constitution_id": cid,
                "name": constitution.name,
                "version": constitution.version,
                "description": constitution.description,
                "source_path": str(Path(path).resolve()),
                "principle_count": len(constitution.principles),
                "document": json.dumps(
                    constitution.model_dump(mode="json", exclude_none=True), ensure_ascii=False
                ),
            }
        ],
    )
    run.append(
        "principles",
        [
            {
                "row_id": content_id("principle_row", {"constitution_id": cid, "principle_id": p.id}),
                "constitution_id": cid,
                "principle_id": p.id,
                "principle_hash": p.principle_hash,
                "title": p.title,
                "critique": p.critique,
                "revision": p.revision,
                "comparison": p.comparison,
                "tags": list(p.tags),
                "rules": json.dumps([r.model_dump(exclude_none=True) for r in p.rules], ensure_ascii=False),
            }
            for p in constitution.principles
        ],
    )
    run.constitution_ids.add(cid)
    return constitution


def ingest_prompt_set(run: RunContext, path: str | Path, prompt_set: str | None = None) -> int:
    """Store a prompt set's conversations; returns how many rows were new."""
    records = load_prompt_set(path, prompt_set)
    run.add_input(path)
    return run.append("prompts", [record.row() for record in records])


def ingest_label_file(
    run: RunContext,
    path: str | Path,
    fmt: str,
    *,
    annotator: str | None = None,
    family: str | None = None,
    skip_invalid: bool = False,
) -> ImportResult:
    """Store a human label export; see :mod:`tasks.ingest.human_labels` for formats and validation."""
    parsed = parse_label_file(path, fmt, annotator=annotator, family=family)
    return import_labels(run, parsed, skip_invalid=skip_invalid)
