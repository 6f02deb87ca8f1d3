"""The SQL catalog is built once per state of the store and reused: same key, same answers."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.ingest.prompt_sets import prompt_record
from tasks.store import sql_catalog
from tasks.store.runs import recorded_run
from tasks.store.sql import run_query
from tasks.store.sql_catalog import CATALOGS, catalog_key
from tasks.store.store import Store

COUNT = "select count(*) from prompts"


def prompts(texts: list[str]) -> list[dict]:
    return [prompt_record([{"role": "user", "content": text}], "set", "booking").row() for text in texts]


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("CHARTER_CACHE", str(folder))
    return folder


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Where each session had to build its catalog (the rest copied the cached one)."""
    built: list[Path] = []
    build = sql_catalog.build_catalog

    def counted(store: Store, path: Path, files: dict, liveness: list) -> None:
        built.append(path)
        build(store, path, files, liveness)

    monkeypatch.setattr(sql_catalog, "build_catalog", counted)
    return built


def cached_catalogs(cache: Path) -> list[Path]:
    return sorted((cache / CATALOGS).glob("*/*.duckdb"))


def test_an_unchanged_store_reuses_its_catalog_and_a_change_rebuilds_it(
    store: Store, cache: Path, builds: list[Path]
) -> None:
    store.append("prompts", prompts(["Can I book Tuesday?", "Is 9am free?"]), "r1")
    assert run_query(store, COUNT).rows == [(2,)]
    assert run_query(store, COUNT).rows == [(2,)]
    assert len(builds) == 1
    (first,) = cached_catalogs(cache)

    store.append("prompts", prompts(["Can I move my visit?"]), "r2")
    assert run_query(store, COUNT).rows == [(3,)]  # the new file is in the views at once
    assert len(builds) == 2
    (second,) = cached_catalogs(cache)  # the store's older catalog is gone
    assert second != first
    assert run_query(store, COUNT).rows == [(3,)]
    assert len(builds) == 2


def test_a_reused_catalog_answers_every_view_as_a_rebuilt_one(store: Store, cache: Path) -> None:
    store.append("prompts", prompts(["Can I book Tuesday?"]), "r1")
    with recorded_run(store, "ingest", {}):
        pass
    views = [
        name
        for (name,) in run_query(
            store, "select view_name from duckdb_views() where not internal order by view_name"
        ).rows
    ]
    counts = "select " + ", ".join(f'(select count(*) from "{name}")' for name in views)
    reused = run_query(store, counts).rows
    assert len(cached_catalogs(cache)) == 1
    for catalog in cached_catalogs(cache):
        catalog.unlink()
    assert run_query(store, counts).rows == reused
    assert len(views) > 20 and reused[0][views.index("prompts")] == 1


def test_the_key_follows_files_liveness_and_location(store: Store, tmp_path: Path) -> None:
    store.append("prompts", prompts(["Can I book Tuesday?"]), "r1")
    files = {"prompts": store.files("prompts")}
    key = catalog_key(store, files, [])
    assert catalog_key(store, files, []) == key
    assert catalog_key(store, files, [("run-1", True)]) != key  # a run started or died
    assert catalog_key(store, {"prompts": []}, []) != key
    moved = Store.create(tmp_path / "elsewhere")
    assert catalog_key(moved, files, []) != key


def test_a_cache_that_cannot_be_written_still_answers(store: Store, tmp_path: Path, monkeypatch) -> None:
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the cache folder would go")
    monkeypatch.setenv("CHARTER_CACHE", str(blocked))
    store.append("prompts", prompts(["Can I book Tuesday?"]), "r1")
    assert run_query(store, COUNT).rows == [(1,)]
    assert run_query(store, COUNT).rows == [(1,)]
