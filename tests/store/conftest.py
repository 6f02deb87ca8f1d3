"""What the store tests share."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from tasks.ingest.prompt_sets import prompt_record
from tasks.store.store import Store


@pytest.fixture
def prompts_store(store: Store) -> Store:
    """Three prompts: two in the booking family, one in privacy."""
    families = {"Book a table?": "booking", "Book a room?": "booking", "Who lives here?": "privacy"}
    rows = [prompt_record([{"role": "user", "content": q}], "set", f).row() for q, f in families.items()]
    store.append("prompts", rows, "r0")
    return store


@pytest.fixture
def session_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The temp dir that sessions make their catalog folders in, empty to start with."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder
