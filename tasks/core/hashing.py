"""Content hashes: the ids of every row, so reruns are idempotent and crashes never duplicate."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no insignificant whitespace: one text per value."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def content_id(kind: str, value: Any) -> str:
    """sha256 of a kind tag plus the canonical JSON of ``value``.

    The kind tag keeps equal payloads of different tables (a prompt and a response
    with the same text, say) from sharing an id.
    """
    digest = hashlib.sha256()
    digest.update(kind.encode())
    digest.update(b"\0")
    digest.update(canonical_json(value).encode())
    return digest.hexdigest()


def file_sha256(path: str | Path) -> str:
    """sha256 of a file's bytes, read in chunks so large exports do not fill memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
