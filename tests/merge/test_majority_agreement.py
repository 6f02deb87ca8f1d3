"""The human majority is computed twice: by ``charter merge`` in Python (``tasks.merge.policy``) and
by the ``human_votes``/``human_majority`` views the audit reads. Random label sets, seeded, must get
the same latest vote per annotator, the same strict-majority vote and the same share from both."""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from tasks.core.conversation import messages_json, prompt_id
from tasks.ingest.human_labels import LabelOrigin, human_label_row
from tasks.merge.policy import MergeSettings, merge_preferences
from tasks.store.schema import table_spec
from tasks.store.view_files import audit_views

CASES = 300
T0 = datetime(2026, 1, 1, tzinfo=UTC)
# Ties are decided as votes (target 0.5), splits dropped; a flat target of 1.0 on every decided
# non-tie row makes the decided vote readable from the row alone.
POLICY = MergeSettings(ties="keep", human_split="drop", soft_targets=False)
MAX_PAIRS = 4


def conversation(pair: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"Can I book visit {pair}?"}]


PROMPTS = {prompt_id(conversation(p)): {"messages": messages_json(conversation(p))} for p in range(MAX_PAIRS)}


def random_labels(draw: random.Random) -> list[dict[str, Any]]:
    """A few pairs, each labelled by up to four annotators, some more than once: relabels from
    other files, with times and rows drawn from small ranges so that they often coincide."""
    rows = []
    for pair in range(draw.randint(1, MAX_PAIRS)):
        for label in range(draw.randint(1, 8)):
            origin = LabelOrigin("charter", f"/labels-{label}.jsonl", f"{label:064x}")
            row = human_label_row(
                messages=conversation(pair),
                response_a=f"Yes, visit {pair} is booked.",
                response_b=f"Please call the clinic about visit {pair}.",
                choice=draw.choice(["a", "b", "tie"]),
                annotator=f"ann-{draw.randint(1, 4)}",
                origin=origin,
                source_row=draw.randint(1, 2),
            )
            created_at = T0 + timedelta(minutes=draw.randint(0, 2))
            rows.append(row | {"run_id": "r", "created_at": created_at})
    return rows


@pytest.fixture(scope="module")
def majority_view() -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection with the two views, over whatever Arrow table is registered as human_labels."""
    with contextlib.closing(duckdb.connect()) as con:
        con.register("human_labels", table_spec("human_labels").schema.empty_table())
        for view in audit_views():
            if view.name in ("human_votes", "human_majority"):
                con.execute(view.sql)
        yield con


def sql_majorities(con: duckdb.DuckDBPyConnection, rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The ``human_majority`` view over exactly these rows, keyed by pair."""
    con.register("human_labels", pa.Table.from_pylist(rows, schema=table_spec("human_labels").schema))
    relation = con.sql("select * from human_majority")
    return {row[0]: dict(zip(relation.columns, row, strict=True)) for row in relation.fetchall()}


def merged_majorities(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """What ``charter merge`` decided per pair: the vote, the share and how many annotators."""
    result = merge_preferences(rows, [], PROMPTS, POLICY)
    decided = {}
    for row in result.rows:
        vote = (
            "tie" if row["target"] == 0.5 else "first" if row["chosen_id"] < row["rejected_id"] else "second"
        )
        decided[row["pair_id"]] = {
            "majority_vote": vote,
            "majority_share": row["human_agreement"],
            "annotators": row["human_labels"],
            "decided_by": row["decided_by"],
        }
    return decided


def test_merge_and_the_human_majority_view_agree_on_random_label_sets(
    majority_view: duckdb.DuckDBPyConnection,
) -> None:
    for seed in range(CASES):
        rows = random_labels(random.Random(seed))
        in_sql, in_merge = sql_majorities(majority_view, rows), merged_majorities(rows)
        for pair, view in in_sql.items():
            context = f"seed {seed}, pair {pair[:12]}: view {view}, merge {in_merge.get(pair)}"
            if view["majority_vote"] is None:
                assert pair not in in_merge, context  # a split: merge drops it
                continue
            merged = in_merge[pair]
            assert merged["majority_vote"] == view["majority_vote"], context
            assert merged["annotators"] == view["annotators"], context
            assert merged["majority_share"] == pytest.approx(view["majority_share"], abs=5e-5), context
            assert merged["decided_by"] == ("human" if view["annotators"] == 1 else "human-majority"), context
        assert in_merge.keys() <= in_sql.keys(), f"seed {seed}"
