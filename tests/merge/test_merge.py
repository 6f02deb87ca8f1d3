"""Merging human and AI labels into a preference set: hand-built pairs whose answers are worked out here."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from tasks.core.conversation import messages_json, orientation_free_vote, pair_id, prompt_id, response_id
from tasks.core.errors import CharterError, InputError
from tasks.core.hashing import content_id
from tasks.merge.policy import MergeSettings, load_merge_policy, merge_preferences
from tasks.store.exports import preference_set_records, write_records
from tasks.store.schema import table_spec

MESSAGES = [{"role": "user", "content": "I have a headache, can I see someone on Tuesday?"}]
PROMPT = prompt_id(MESSAGES)
PROMPTS = {PROMPT: {"messages": messages_json(MESSAGES), "family": "booking"}}
GOOD = "Tuesday at 10:00 is free with Dr. Lee; shall I book it?"
BAD = "That sounds like a migraine; take 400 mg of ibuprofen."
OTHER = "I can book you in; which time suits you on Tuesday?"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def shown(a: str, b: str, prompt: str = PROMPT) -> dict[str, Any]:
    """The pair columns of a label that showed ``a`` as response A and ``b`` as response B."""
    a_id, b_id = response_id(a), response_id(b)
    return {
        "pair_id": pair_id(prompt, a_id, b_id),
        "prompt_id": prompt,
        "response_a_id": a_id,
        "response_b_id": b_id,
        "response_a": a,
        "response_b": b,
    }


def with_choice(row: dict[str, Any], choice: str) -> dict[str, Any]:
    preferred = {"a": row["response_a_id"], "b": row["response_b_id"], "tie": None}[choice]
    vote = orientation_free_vote(preferred, row["response_a_id"], row["response_b_id"])
    return {**row, "choice": choice, "preferred_id": preferred, "vote": vote}


def human(
    label_id: str,
    a: str,
    b: str,
    choice: str,
    annotator: str = "ann-1",
    minute: int = 0,
    prompt: str = PROMPT,
) -> dict[str, Any]:
    row = with_choice(shown(a, b, prompt), choice)
    return {
        **row,
        "label_id": label_id,
        "annotator": annotator,
        "created_at": T0 + timedelta(minutes=minute),
        "source_row": minute,
    }


def ai(
    label_id: str,
    a: str,
    b: str,
    p_a: float,
    method: str = "logprob",
    judge_model: str = "judge-1",
    principle_id: str | None = "no-diagnosis",
    constitution_id: str | None = "clinic-1",
    orders_agree: bool | None = True,
) -> dict[str, Any]:
    choice = "a" if p_a > 0.5 else "b" if p_a < 0.5 else "tie"
    return {
        **with_choice(shown(a, b), choice),
        "label_id": label_id,
        "p_a": p_a,
        "p_a_first": p_a,
        "p_a_second": None if orders_agree is None else p_a,
        "orders_agree": orders_agree,
        "method": method,
        "judge_model": "rules" if method == "rule" else judge_model,
        "principle_id": principle_id,
        "constitution_id": constitution_id,
        "rule_id": "no-dosing" if method == "rule" else None,
    }


def rule(label_id: str, a: str, b: str, p_a: float) -> dict[str, Any]:
    return ai(label_id, a, b, p_a, method="rule", principle_id="no-dosing", orders_agree=None)


def merge(humans=(), ais=(), **policy: Any):
    return merge_preferences(list(humans), list(ais), PROMPTS, MergeSettings(**policy))


def only_row(result) -> dict[str, Any]:
    assert len(result.rows) == 1, result.dropped
    return result.rows[0]


def test_humans_override_the_ai_and_ai_p_is_oriented_to_the_chosen() -> None:
    # One human prefers GOOD (shown as B); the judge says P(BAD shown as A) = 0.9.
    humans = [human("h1", BAD, GOOD, "b")]
    ais = [ai("a1", BAD, GOOD, 0.9)]
    row = only_row(merge(humans, ais))
    assert (row["decided_by"], row["chosen"], row["rejected"]) == ("human", GOOD, BAD)
    assert (row["chosen_id"], row["rejected_id"]) == (response_id(GOOD), response_id(BAD))
    # One vote for GOOD: (1 + 0.5 * 0 ties) / 1 annotator.
    assert row["target"] == 1.0 and row["human_agreement"] == 1.0
    assert (row["human_labels"], row["ai_labels"]) == (1, 1)
    # The AI's P(GOOD better) = 1 - 0.9: recorded for the audit although humans decided.
    assert row["ai_p_chosen"] == pytest.approx(0.1)
    assert (row["label_ids"], row["principle_ids"], row["constitution_ids"]) == (["h1"], [], [])
    assert (row["prompt"], row["family"]) == (PROMPTS[PROMPT]["messages"], "booking")

    reversed_precedence = only_row(merge(humans, ais, human_override=False))
    assert (reversed_precedence["decided_by"], reversed_precedence["chosen"]) == ("ai", BAD)
    assert reversed_precedence["target"] == pytest.approx(0.9)
    assert reversed_precedence["label_ids"] == ["a1"]


def test_majority_of_three_counts_each_annotators_latest_vote() -> None:
    humans = [
        human("h1", BAD, GOOD, "a", "ann-1", minute=0),  # replaced by ann-1's relabel below
        human("h2", GOOD, BAD, "a", "ann-1", minute=5),
        human("h3", BAD, GOOD, "b", "ann-2"),
        human("h4", GOOD, BAD, "b", "ann-3"),
    ]
    row = only_row(merge(humans))
    assert (row["decided_by"], row["chosen"]) == ("human-majority", GOOD)
    # GOOD 2 votes, BAD 1: agreement 2/3, soft target (2 + 0.5 * 0) / 3.
    assert row["human_labels"] == 3
    assert row["human_agreement"] == pytest.approx(2 / 3)
    assert row["target"] == pytest.approx(2 / 3)
    assert row["label_ids"] == ["h2", "h3", "h4"]
    assert only_row(merge(humans, soft_targets=False))["target"] == 1.0


def test_a_tie_vote_is_half_a_vote_for_each_side() -> None:
    humans = [
        human("h1", GOOD, BAD, "a", "ann-1"),
        human("h2", BAD, GOOD, "b", "ann-2"),
        human("h3", GOOD, BAD, "tie", "ann-3"),
        human("h4", GOOD, BAD, "b", "ann-4"),
    ]
    row = only_row(merge(humans))
    # GOOD 2, tie 1, BAD 1 of 4: target (2 + 0.5 * 1) / 4 = 0.625, agreement 2/4.
    assert row["chosen"] == GOOD
    assert row["target"] == pytest.approx(0.625)
    assert row["human_agreement"] == 0.5


def test_a_human_split_is_dropped_or_left_to_the_ai() -> None:
    humans = [human("h1", GOOD, BAD, "a", "ann-1"), human("h2", GOOD, BAD, "b", "ann-2")]
    ais = [ai("a1", BAD, GOOD, 0.2)]  # P(GOOD) = 1 - 0.2 = 0.8

    dropped = merge(humans, ais)
    assert dropped.rows == [] and dropped.dropped == {"human-split": 1}

    row = only_row(merge(humans, ais, human_split="ai"))
    assert (row["decided_by"], row["chosen"]) == ("ai", GOOD)
    assert row["target"] == pytest.approx(0.8)
    # The humans still show in the counts, but only the AI label decided the row.
    assert (row["human_labels"], row["human_agreement"], row["label_ids"]) == (2, 0.5, ["a1"])

    # With no AI label to ask, the split is the reason.
    assert merge(humans, human_split="ai").dropped == {"human-split": 1}


def test_ties_are_dropped_or_kept_at_one_half() -> None:
    humans = [human("h1", GOOD, BAD, "tie", "ann-1"), human("h2", BAD, GOOD, "tie", "ann-2")]
    assert merge(humans).dropped == {"tie": 1}

    row = only_row(merge(humans, ties="keep"))
    first, second = sorted([response_id(GOOD), response_id(BAD)])
    assert (row["target"], row["chosen_id"], row["rejected_id"]) == (0.5, first, second)
    assert row["human_agreement"] == 1.0

    # An AI mean of exactly 0.5 is a tie only when the margin allows it: (0.7 + 0.3) / 2.
    ais = [ai("a1", GOOD, BAD, 0.7), ai("a2", GOOD, BAD, 0.3, principle_id="urgent-care")]
    assert merge(ais=ais, ties="keep").dropped == {"below-margin": 1}
    ai_tie = only_row(merge(ais=ais, ties="keep", ai_min_margin=0))
    assert (ai_tie["decided_by"], ai_tie["target"], ai_tie["chosen_id"]) == ("ai", 0.5, first)
    assert merge(ais=ais, ai_min_margin=0).dropped == {"tie": 1}


def test_ai_margin_filter() -> None:
    weak = [ai("a1", GOOD, BAD, 0.55)]
    # |0.55 - 0.5| = 0.05: below a 0.1 margin, enough for a 0.05 one.
    assert merge(ais=weak).dropped == {"below-margin": 1}
    row = only_row(merge(ais=weak, ai_min_margin=0.05))
    assert (row["chosen"], row["target"], row["weight"]) == (GOOD, pytest.approx(0.55), 1.0)
    # 0.6 - 0.5 is 0.09999999999999998 in floating point: still exactly the margin.
    assert only_row(merge(ais=[ai("a1", GOOD, BAD, 0.6)]))["chosen"] == GOOD


def test_ensemble_averages_labels_shown_in_opposite_orders() -> None:
    ais = [
        ai("a1", GOOD, BAD, 0.8, principle_id="no-diagnosis", constitution_id="clinic-1"),  # P(GOOD) 0.8
        ai("a2", BAD, GOOD, 0.4, principle_id="urgent-care", constitution_id="clinic-2"),  # P(GOOD) 0.6
        ai("a3", GOOD, BAD, 0.7, judge_model="judge-2", principle_id="no-diagnosis"),  # P(GOOD) 0.7
    ]
    row = only_row(merge(ais=ais))
    # Mean P(GOOD) = (0.8 + 0.6 + 0.7) / 3 = 0.7; averaging raw p_a (0.8, 0.4, 0.7) would give 0.633.
    assert (row["decided_by"], row["chosen"]) == ("ai", GOOD)
    assert row["target"] == pytest.approx(0.7) and row["ai_p_chosen"] == pytest.approx(0.7)
    assert (row["human_labels"], row["human_agreement"], row["ai_labels"]) == (0, None, 3)
    assert row["label_ids"] == ["a1", "a2", "a3"]
    assert row["principle_ids"] == ["no-diagnosis", "urgent-care"]
    assert row["constitution_ids"] == ["clinic-1", "clinic-2"]

    # Only judge-2 counts: P(GOOD) = 0.7 from a3 alone.
    judge_2 = only_row(merge(ais=ais, judge_models=("judge-2",)))
    assert (judge_2["label_ids"], judge_2["target"]) == (["a3"], pytest.approx(0.7))
    assert merge(ais=ais, ai_methods=("cot",)).dropped == {"no-usable-label": 1}


def test_require_consistent_keeps_only_labels_whose_orders_agreed() -> None:
    ais = [
        ai("a1", GOOD, BAD, 0.7, orders_agree=True),
        ai("a2", GOOD, BAD, 0.1, orders_agree=False),
        ai("a3", BAD, GOOD, 0.8, orders_agree=None),  # single order: P(GOOD) = 0.2
    ]
    # All three: mean P(GOOD) = (0.7 + 0.1 + 0.2) / 3 = 1/3, so BAD wins with target 2/3.
    everything = only_row(merge(ais=ais))
    assert (everything["chosen"], everything["target"]) == (BAD, pytest.approx(2 / 3))
    consistent = only_row(merge(ais=ais, ai_require_consistent=True))
    assert (consistent["chosen"], consistent["target"], consistent["label_ids"]) == (GOOD, 0.7, ["a1"])
    assert merge(ais=ais[1:], ai_require_consistent=True).dropped == {"inconsistent": 1}
    # Rule labels are deterministic: always consistent.
    assert only_row(merge(ais=[rule("r1", GOOD, BAD, 1.0)], ai_require_consistent=True))["chosen"] == GOOD


def test_rules_override_the_judge_and_conflicting_rules_drop_the_pair() -> None:
    judge = ai("a1", GOOD, BAD, 0.1)  # P(GOOD) 0.1: the judge prefers BAD
    dosing = rule("r1", BAD, GOOD, 0.0)  # P(GOOD) 1.0: BAD gives a dose
    # Certain rules (the old default): the rule's 1.0 is the target.
    row = only_row(merge(ais=[judge, dosing], rule_confidence="fixed"))
    assert (row["decided_by"], row["chosen"], row["target"]) == ("rule", GOOD, 1.0)
    assert (row["label_ids"], row["principle_ids"], row["ai_labels"]) == (["r1"], ["no-dosing"], 2)
    assert row["ai_p_chosen"] == 1.0

    # Without the override the rule is one more vote: P(GOOD) = (0.1 + 1.0) / 2 = 0.55.
    fixed = {"rule_confidence": "fixed"}
    assert merge(ais=[judge, dosing], rules_override_judge=False, **fixed).dropped == {"below-margin": 1}
    mixed = only_row(merge(ais=[judge, dosing], rules_override_judge=False, ai_min_margin=0.05, **fixed))
    assert (mixed["decided_by"], mixed["chosen"], mixed["target"]) == ("ai", GOOD, pytest.approx(0.55))

    conflict = [dosing, rule("r2", GOOD, BAD, 0.0)]  # r2: P(GOOD) 0.0
    assert merge(ais=[judge, *conflict]).dropped == {"rule-conflict": 1}


def test_a_rule_nobody_checked_is_as_sure_as_its_prior() -> None:
    judge = ai("a1", GOOD, BAD, 0.1)
    dosing = rule("r1", BAD, GOOD, 0.0)
    # No person labelled a pair the rule decided: confidence = the prior's mean 4 / (4 + 1) = 0.8.
    result = merge(ais=[judge, dosing])
    assert result.rule_confidence == {"no-dosing/no-dosing": pytest.approx(0.8)}
    row = only_row(result)
    assert (row["decided_by"], row["chosen"], row["target"]) == ("rule", GOOD, pytest.approx(0.8))
    assert row["ai_p_chosen"] == pytest.approx(0.8)
    # A prior of 1 and 1 (uniform) puts it at 0.5, not above the minimum: the judge decides.
    uniform = only_row(merge(ais=[judge, dosing], rule_prior_agree=1.0))
    assert (uniform["decided_by"], uniform["chosen"], uniform["target"]) == ("ai", BAD, pytest.approx(0.9))
    assert merge(ais=[dosing], rule_prior_agree=1.0).dropped == {"low-rule-confidence": 1}
    # As one more vote the rule counts 0.8 for GOOD: (0.1 + 0.8) / 2 = 0.45, so BAD at 0.55.
    mixed = only_row(merge(ais=[judge, dosing], rules_override_judge=False, ai_min_margin=0.05))
    assert (mixed["decided_by"], mixed["chosen"], mixed["target"]) == ("ai", BAD, pytest.approx(0.55))


def test_identical_responses_are_never_a_preference() -> None:
    result = merge([human("h1", GOOD, GOOD, "a")], [ai("a1", GOOD, GOOD, 0.9)])
    assert result.rows == [] and result.dropped == {"identical-responses": 1}


def test_weights_follow_the_deciding_source() -> None:
    humans = [human("h1", GOOD, BAD, "a")]
    ais = [ai("a2", GOOD, OTHER, 0.9), rule("r3", BAD, OTHER, 0.0)]
    rows = merge(humans, ais, human_weight=2.0, ai_weight=0.5).rows
    weights = {row["decided_by"]: row["weight"] for row in rows}
    assert weights == {"human": 2.0, "ai": 0.5, "rule": 0.5}


def test_rows_match_the_preferences_schema_and_the_set_row_counts() -> None:
    humans = [
        human("h1", GOOD, BAD, "a"),
        human("h2", GOOD, OTHER, "a"),
        human("h3", GOOD, OTHER, "b", "ann-2"),
    ]
    ais = [ai("a1", BAD, OTHER, 0.55)]
    result = merge(humans, ais)
    lineage = {"run_id", "created_at"}
    columns = [name for name in table_spec("preferences").schema.names if name not in lineage]
    assert [list(row) for row in result.rows] == [columns]
    schema = pa.schema([field for field in table_spec("preferences").schema if field.name not in lineage])
    assert pa.Table.from_pylist(result.rows, schema=schema).num_rows == 1
    row = result.rows[0]
    assert row["row_id"] == content_id("preference", {"set_id": result.set_id, "pair_id": row["pair_id"]})
    set_columns = [name for name in table_spec("preference_sets").schema.names if name not in lineage]
    assert list(result.set_row) == set_columns
    assert result.set_row["rows"] == 1
    assert json.loads(result.set_row["counts"]) == {
        "kept": {"human": 1},
        "dropped": {"human-split": 1, "below-margin": 1},
    }
    assert json.loads(result.set_row["policy"]) == MergeSettings().model_dump(mode="json")


def test_set_id_is_stable_under_shuffles_and_changes_with_policy_and_labels() -> None:
    humans = [human("h1", GOOD, BAD, "a", "ann-1"), human("h2", BAD, GOOD, "b", "ann-2")]
    ais = [
        ai("a1", GOOD, OTHER, 0.8),
        ai("a2", OTHER, GOOD, 0.3, principle_id="urgent-care"),
        ai("a3", BAD, OTHER, 0.35),
    ]
    base = merge(humans, ais)
    pair_ids = [row["pair_id"] for row in base.rows]
    assert len(pair_ids) == 3 and pair_ids == sorted(pair_ids)
    rng = random.Random(7)
    for _ in range(5):
        shuffled_humans, shuffled_ais = humans[:], ais[:]
        rng.shuffle(shuffled_humans)
        rng.shuffle(shuffled_ais)
        again = merge(shuffled_humans, shuffled_ais)
        assert (again.set_id, again.rows) == (base.set_id, base.rows)

    # Listing methods in another order is the same policy.
    assert merge(humans, ais, ai_methods=("rule", "cot", "logprob")).set_id == base.set_id
    # A stricter margin keeps the same rows (margins 0.3, 0.2, 0.15) but is another policy.
    stricter = merge(humans, ais, ai_min_margin=0.15)
    assert [r["pair_id"] for r in stricter.rows] == [r["pair_id"] for r in base.rows]
    assert stricter.set_id != base.set_id
    changed = merge(humans, [ai("a1", GOOD, OTHER, 0.85), *ais[1:]])
    assert changed.set_id != base.set_id


def test_a_label_without_its_prompt_is_an_error() -> None:
    other = prompt_id([{"role": "user", "content": "Is my lab result ready?"}])
    with pytest.raises(CharterError, match=f"label h9 refers to prompt {other}"):
        merge([human("h1", GOOD, BAD, "a"), human("h9", GOOD, BAD, "a", prompt=other)])


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_load_merge_policy(tmp_path: Path) -> None:
    text = "ties: keep\nai_min_margin: 0.2\nai_methods: [logprob, rule]\njudge_models: [judge-1]\n"
    policy = load_merge_policy(write(tmp_path, text))
    assert policy == MergeSettings(
        ties="keep", ai_min_margin=0.2, ai_methods=("logprob", "rule"), judge_models=("judge-1",)
    )


@pytest.mark.parametrize(
    ("text", "line", "field", "message"),
    [
        ("ties: keep\nai_min_margn: 0.2\n", 2, "ai_min_margn", "unknown field 'ai_min_margn'"),
        ("human_weight: 1\nai_min_margin: high\n", 2, "ai_min_margin", "a number (got the text 'high')"),
        ("ai_min_margin: 0.7\n", 1, "ai_min_margin", "must be at most 0.5 (got 0.7)"),
        ("soft_targets: true\nhuman_override: 'no'\n", 2, "human_override", "must be true or false"),
        ("ai_methods:\n  - logprob\n  - vibes\n", 3, "ai_methods[1]", "'logprob', 'cot' or 'rule'"),
    ],
)
def test_policy_errors_name_file_line_and_field(
    tmp_path: Path, text: str, line: int, field: str, message: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(InputError) as raised:
        load_merge_policy(path)
    [problem] = raised.value.problems
    assert (problem.path, problem.line, problem.field) == (str(path), line, field)
    assert message in problem.message
    assert str(raised.value).startswith(f"{path}:{line} [{field}]")


def test_missing_or_malformed_policy_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="file not found"):
        load_merge_policy(tmp_path / "absent.yaml")
    with pytest.raises(InputError, match="must be a mapping"):
        load_merge_policy(write(tmp_path, "- ties\n"))


@pytest.mark.parametrize("style", ["conversational", "standard"])
def test_export_records_round_trip_through_jsonl(tmp_path: Path, style: str) -> None:
    result = merge([human("h1", GOOD, BAD, "a")], [ai("a1", GOOD, OTHER, 0.8)])
    records = preference_set_records(result.rows, style)
    lineage = ["target", "weight", "pair_id", "set_id", "decided_by", "label_ids", "principle_ids"]
    lineage.append("constitution_ids")
    for record, row in zip(records, result.rows, strict=True):
        if style == "conversational":
            assert record["prompt"] == MESSAGES
            assert record["chosen"] == [{"role": "assistant", "content": GOOD}]
            assert record["rejected"] == [{"role": "assistant", "content": row["rejected"]}]
        else:
            assert record["prompt"] == f"\n\nHuman: {MESSAGES[0]['content']}\n\nAssistant:"
            assert (record["chosen"], record["rejected"]) == (" " + GOOD, " " + row["rejected"])
        assert {key: record[key] for key in lineage} == {key: row[key] for key in lineage}
    path = write_records(records, tmp_path / "set.jsonl", "jsonl")
    read_back = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert read_back == records


def test_export_records_load_as_a_hugging_face_dataset(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    records = preference_set_records(merge([human("h1", GOOD, BAD, "a")], [ai("a1", GOOD, OTHER, 0.8)]).rows)
    loaded = datasets.load_from_disk(str(write_records(records, tmp_path / "set", "hf")))
    assert loaded.to_list() == records


def test_the_bundled_policy_loads_and_differs_from_the_default_where_it_says() -> None:
    path = Path(__file__).resolve().parents[2] / "datasets" / "healthcare-scheduling" / "merge-policy.yaml"
    policy = load_merge_policy(path)
    changed = {key for key, value in policy.model_dump().items() if value != getattr(MergeSettings(), key)}
    assert changed == {"ai_min_margin", "ai_require_consistent", "ai_weight"}
