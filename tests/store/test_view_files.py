"""The audit views' files: each documents every column it outputs, and they load in the order they need."""

from __future__ import annotations

import re

import pytest

from tasks.core.errors import CharterError
from tasks.store.sql import readonly_connection
from tasks.store.store import Store
from tasks.store.view_files import ViewFile, audit_views, load_order, parse_view_file
from tests.conftest import PROJECT_ROOT

GOOD = """-- Votes per pair.
--
-- Columns:
--   pair_id: the pair
--   votes: how many votes it has, a longer
--     explanation on a second line
create view vote_counts as
select pair_id, count(*) as votes from human_votes group by pair_id;
"""

COLUMN_DOCS = "select column_name, comment from duckdb_columns() where table_name = ? order by column_index"


def test_every_view_documents_each_of_its_output_columns_in_order(store: Store) -> None:
    with readonly_connection(store) as con:
        for view in audit_views():
            catalog = con.execute(COLUMN_DOCS, [view.name]).fetchall()
            assert list(view.columns) == [name for name, _ in catalog], view.path
            assert all(comment for _, comment in catalog), view.path
            (doc,) = con.execute(
                "select comment from duckdb_views() where view_name = ?", [view.name]
            ).fetchone()
            assert doc == view.doc and "Columns:" not in doc


def test_the_readme_lists_every_audit_view() -> None:
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Audit views", 1)[1].split("\n### ", 1)[0]
    listed = {
        name for row in re.findall(r"^\| (`.*?) \|", section, re.M) for name in re.findall(r"`(\w+)`", row)
    }
    assert listed == {view.name for view in audit_views()}


def test_a_view_file_is_parsed_into_its_doc_columns_and_reads() -> None:
    view = parse_view_file("views/vote_counts.sql", GOOD)
    assert view.doc == "Votes per pair."
    assert view.columns == {
        "pair_id": "the pair",
        "votes": "how many votes it has, a longer explanation on a second line",
    }
    assert view.reads == {"human_votes"}


def test_views_load_after_the_views_they_read_whatever_their_names() -> None:
    def view(name: str, reads: str) -> ViewFile:
        body = f"-- {name}.\n--\n-- Columns:\n--   x: x\ncreate view {name} as\nselect x from {reads};\n"
        return parse_view_file(f"views/{name}.sql", body)

    views = [view("a_summary", "m_middle"), view("m_middle", "z_base"), view("z_base", "human_labels")]
    assert [v.name for v in load_order(views)] == ["z_base", "m_middle", "a_summary"]
    loop = [view("one", "two"), view("two", "one")]
    with pytest.raises(CharterError, match="cycle"):
        load_order(loop)


MALFORMED = {
    "no-columns": (GOOD.replace("-- Columns:\n", ""), "needs a `-- Columns:` line"),
    "no-description": (
        GOOD.replace("-- Votes per pair.\n", ""),
        r"vote_counts.sql:1: .*what the view answers",
    ),
    "stray-line": (GOOD.replace("--   pair_id", "-- pair_id"), r"vote_counts.sql:4: expected `--   column"),
    "twice": (
        GOOD.replace("--   votes:", "--   pair_id:"),
        r"vote_counts.sql:5: column 'pair_id' is documented twice",
    ),
    "other-name": (
        GOOD.replace("view vote_counts", "view counts"),
        r"exactly one `create view vote_counts as`",
    ),
    "gap": (
        GOOD.replace("create view", "\ncreate view"),
        r"vote_counts.sql:7: .*must run up to its `create view`",
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_view_file_is_refused_naming_file_and_line(case: str) -> None:
    text, message = MALFORMED[case]
    with pytest.raises(CharterError, match=message):
        parse_view_file("views/vote_counts.sql", text)


def test_a_documented_column_the_view_lacks_fails_the_catalog_naming_the_file(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    stale = parse_view_file("views/vote_counts.sql", GOOD.replace("as votes", "as n"))
    monkeypatch.setattr("tasks.store.sql_catalog.audit_views", lambda: (*audit_views(), stale))
    with (
        pytest.raises(CharterError, match=r"views/vote_counts.sql: documents a column 'votes'"),
        readonly_connection(store),
    ):
        pass
