"""Read-only SQL and the audit views, checked against answers worked out by hand."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from tasks.core.conversation import response_id
from tasks.core.errors import CharterError, ReadOnlyQueryError
from tasks.ingest.human_labels import LabelOrigin, human_label_row
from tasks.ingest.prompt_sets import prompt_record
from tasks.store.audit import audit_summary
from tasks.store.sql import readonly_connection, run_query
from tasks.store.store import Store
from tests.conftest import stored_files

ORIGIN = LabelOrigin(source_format="charter", source_file="/labels.jsonl", source_sha256="f" * 64)


def prompt_text(pair: int) -> str:
    return f"Question number {pair}?"


def vote_label(pair: int, annotator: str, vote: str, origin: LabelOrigin = ORIGIN, row: int = 1) -> dict:
    """A label whose orientation-free vote is ``vote`` ('first', 'second' or 'tie')."""
    one, two = f"Answer one to {pair}.", f"Answer two to {pair}."
    first = min([one, two], key=response_id)
    # Show the responses as (one, two) and pick whichever of them carries the wanted vote.
    choice = "tie" if vote == "tie" else ("a" if (one == first) == (vote == "first") else "b")
    return human_label_row(
        messages=[{"role": "user", "content": prompt_text(pair)}],
        response_a=one,
        response_b=two,
        choice=choice,
        annotator=annotator,
        origin=origin,
        source_row=row,
    )


@pytest.fixture
def audited(store: Store) -> Store:
    families = {1: "booking", 2: "booking", 3: "privacy", 4: "privacy", 5: "urgent-symptoms"}
    store.append(
        "prompts",
        [
            prompt_record([{"role": "user", "content": prompt_text(i)}], "set", family).row()
            for i, family in families.items()
        ],
        "r0",
    )
    votes = {
        "x": ["first", "first", "second", "tie"],
        "y": ["first", "second", "second", "tie"],
    }
    rows = [vote_label(pair + 1, who, vote) for who, vs in votes.items() for pair, vote in enumerate(vs)]
    rows.append(vote_label(1, "z", "second"))
    store.append("human_labels", rows, "r1")
    return store


def records(store: Store, query: str) -> list[dict]:
    return run_query(store, query).records()


def test_cohen_kappa_per_annotator_pair_and_pooled(audited: Store) -> None:
    rows = {
        (r["annotator_1"], r["annotator_2"]): r for r in records(audited, "select * from human_agreement")
    }
    # x vs y: agree on 3 of 4; marginals x=(2,1,1)/4, y=(1,2,1)/4 -> p_e = 0.3125, kappa = 0.4375/0.6875.
    assert rows[("x", "y")]["pairs"] == 4
    assert rows[("x", "y")]["agreement"] == pytest.approx(0.75)
    assert rows[("x", "y")]["expected_agreement"] == pytest.approx(0.3125)
    assert rows[("x", "y")]["cohen_kappa"] == pytest.approx(0.6364, abs=1e-4)
    # x vs z on one pair, opposite votes: p_o = 0, p_e = 0 -> kappa 0.
    assert rows[("x", "z")]["cohen_kappa"] == pytest.approx(0.0)
    # Pooled over the 6 rating pairs: p_o = 3/6, p_e = (4*1 + 1*4 + 1*1)/36 = 0.25 -> kappa 1/3.
    assert rows[("(all)", "(all)")]["pairs"] == 6
    assert rows[("(all)", "(all)")]["cohen_kappa"] == pytest.approx(0.3333, abs=1e-4)


def test_disagreement_bench_lists_split_pairs_most_split_first(audited: Store) -> None:
    rows = records(audited, "select * from disagreement_bench")
    assert [(r["prompt"], r["annotators"], r["majority_share"]) for r in rows] == [
        (prompt_text(2), 2, 0.5),
        (prompt_text(1), 3, pytest.approx(0.6667, abs=1e-4)),
    ]
    assert rows[1]["votes"] == "x=first, y=first, z=second"
    assert rows[1]["family"] == "booking"


def test_disagreement_bench_lists_votes_by_annotator_name_with_the_texts_in_id_order(store: Store) -> None:
    # By name 'bob' < 'bob-c' < 'bob2', though as text 'bob-c=' < 'bob2=' < 'bob=': the list is by name.
    rows = [vote_label(7, "bob2", "tie"), vote_label(7, "bob", "first"), vote_label(7, "bob-c", "second")]
    store.append("human_labels", rows, "r1")
    [row] = records(store, "select * from disagreement_bench")
    assert row["votes"] == "bob=first, bob-c=second, bob2=tie"
    assert (row["annotators"], row["majority_share"]) == (3, pytest.approx(0.3333, abs=1e-4))
    first, second = sorted(["Answer one to 7.", "Answer two to 7."], key=response_id)
    assert (row["response_first"], row["response_second"]) == (first, second)


def test_coverage_ledger_shows_unlabelled_families(audited: Store) -> None:
    rows = {(r["family"], r["source"]): r for r in records(audited, "select * from coverage_ledger")}
    assert rows[("booking", "human")]["coverage"] == 1.0
    assert rows[("booking", "human")]["labels"] == 5
    assert rows[("urgent-symptoms", "human")]["labelled_prompts"] == 0
    assert rows[("urgent-symptoms", "human")]["coverage"] == 0
    assert rows[("privacy", "ai")]["coverage"] == 0
    assert audit_summary(audited).unlabelled_families("human") == ["urgent-symptoms"]


def test_label_counts_by_source_and_annotator(audited: Store) -> None:
    rows = records(audited, "select labeller, labels, pairs from label_counts")
    assert rows == [
        {"labeller": "x", "labels": 4, "pairs": 4},
        {"labeller": "y", "labels": 4, "pairs": 4},
        {"labeller": "z", "labels": 1, "pairs": 1},
    ]


def test_a_later_relabel_replaces_the_annotators_vote(audited: Store) -> None:
    later = LabelOrigin(source_format="charter", source_file="/round2.jsonl", source_sha256="e" * 64)
    audited.append("human_labels", [vote_label(2, "x", "second", origin=later)], "r2")
    rows = {
        (r["annotator_1"], r["annotator_2"]): r for r in records(audited, "select * from human_agreement")
    }
    assert rows[("x", "y")]["agreement"] == pytest.approx(1.0)
    assert [r["prompt"] for r in records(audited, "select prompt from disagreement_bench")] == [
        prompt_text(1)
    ]


def test_within_one_file_the_later_row_wins(store: Store) -> None:
    store.append(
        "human_labels", [vote_label(1, "x", "first", row=1), vote_label(1, "x", "second", row=7)], "r"
    )
    assert records(store, "select vote from human_votes") == [{"vote": "second"}]


REFUSED = {
    "delete": ("delete from human_labels", "DELETE statements are refused"),
    "update": ("update human_labels set choice = 'a'", "UPDATE statements are refused"),
    "insert": ("insert into prompts select * from prompts", "INSERT statements are refused"),
    "drop": ("drop view human_labels", "DROP statements are refused"),
    "create": ("create table t as select 1", "CREATE statements are refused"),
    "create-temp": ("create temp table t as select 1", "CREATE statements are refused"),
    "copy-out": ("copy human_labels to 'x.csv'", "COPY statements are refused"),
    "copy-into-store": (
        "copy human_labels to '{tables}/human_labels/evil.parquet'",
        "COPY statements are refused",
    ),
    "export": ("export database '/tmp/charter-export'", "EXPORT statements are refused"),
    "attach": ("attach '/tmp/other.duckdb' as other", "ATTACH statements are refused"),
    "install": ("install httpfs", "LOAD statements are refused"),
    "load": ("load httpfs", "LOAD statements are refused"),
    "set": ("set enable_external_access = true", "SET statements are refused"),
    "read-outside": ("select * from read_csv('/etc/passwd')", "file system operations are disabled"),
    "glob-outside": ("select * from glob('/etc/*')", "file system operations are disabled"),
    "two-statements": ("select 1; select 2", "exactly one statement"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_writes_ddl_and_outside_files_are_refused(audited: Store, case: str) -> None:
    query, message = REFUSED[case]
    before = stored_files(audited)
    with pytest.raises(ReadOnlyQueryError, match=message):
        run_query(audited, query.format(tables=audited.root / "tables"))
    assert stored_files(audited) == before
    assert not list(audited.root.rglob("evil*"))
    assert not Path("x.csv").exists()


def test_duckdb_itself_refuses_writes_even_without_charters_statement_check(audited: Store) -> None:
    with readonly_connection(audited) as con:
        with pytest.raises(duckdb.Error, match="read-only"):
            con.execute("create table t as select 1")
        with pytest.raises(duckdb.PermissionException):
            con.execute("copy (select 1) to '/tmp/charter-should-not-exist.csv'")
        with pytest.raises(duckdb.PermissionException):
            con.execute("select * from read_text('/etc/hostname')")
        with pytest.raises(duckdb.Error, match="locked"):
            con.execute("set enable_external_access = true")
    assert not Path("/tmp/charter-should-not-exist.csv").exists()


def test_reads_work_including_describe_and_cte(audited: Store) -> None:
    assert records(audited, "with t as (select count(*) as n from human_labels) select n from t") == [
        {"n": 9}
    ]
    columns = [r["column_name"] for r in records(audited, "describe human_labels")]
    assert "preferred_id" in columns and "source_row" in columns


def test_sql_errors_are_user_errors(audited: Store) -> None:
    with pytest.raises(CharterError, match="syntax error"):
        run_query(audited, "selec 1")
    with pytest.raises(CharterError, match="no_such_table"):
        run_query(audited, "select * from no_such_table")


def test_every_table_and_view_is_documented_in_the_catalog(store: Store) -> None:
    views = records(store, "select view_name, comment from duckdb_views() where not internal")
    assert {"human_labels", "coverage_ledger", "human_agreement", "disagreements"} <= {
        v["view_name"] for v in views
    }
    undocumented = [v["view_name"] for v in views if not v["comment"]]
    assert undocumented == []


def test_stage_counts_per_stage_and_model(audited: Store) -> None:
    rows = [
        {
            "generation_id": f"g{i}",
            "prompt_id": f"p{i % 2}",
            "model": "m",
            "backend": "hf",
            "params": "{}",
            "sample_index": i,
            "text": "t",
            "finish_reason": "stop",
            "num_tokens": 1,
        }
        for i in range(3)
    ]
    audited.append("generations", rows, "r")
    stages = {(r["stage"], r["model"]): r for r in records(audited, "select * from stage_counts")}
    assert (stages[("generate", "m")]["items_in"], stages[("generate", "m")]["rows_out"]) == (2, 3)
    assert stages[("label (human)", None)]["rows_out"] == 9
    assert stages[("prompts", None)]["rows_out"] == 5
