"""The AI-judge audit views, on hand-built stores, checked against numbers worked out by hand.

Human and AI labels are written straight into the store with real ids (prompt, response and
pair hashes, orientation-free votes), so the views meet them exactly as they meet the judge's.
AI labels show the two responses the other way round from the human labels: the views must
compare orientation-free votes, never the display order.
"""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from flows.cli import app
from tasks.core.conversation import orientation_free_vote, pair_id, prompt_id, response_id
from tasks.core.hashing import content_id
from tasks.ingest.human_labels import LabelOrigin, human_label_row
from tasks.ingest.prompt_sets import prompt_record
from tasks.label.soft_labels import orders_agree, preference
from tasks.store.audit import AUDIT_QUERIES, audit_summary
from tasks.store.sql import run_query
from tasks.store.store import Store

ORIGIN = LabelOrigin(source_format="charter", source_file="/labels.jsonl", source_sha256="f" * 64)
AI_SECTIONS = ("ai_human_agreement", "position_consistency", "calibration_error", "ai_disagreements")


def messages(pair: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"Question number {pair}?"}]


def default_texts(pair: int) -> tuple[str, str]:
    return f"Answer one to {pair}.", f"Answer two to {pair}."


def in_id_order(texts: tuple[str, str]) -> tuple[str, str]:
    first, second = sorted(texts, key=response_id)
    return first, second


def vote_for(texts: tuple[str, str], preferred: str) -> str:
    """The orientation-free vote ('first' or 'second') that prefers the response ``preferred``."""
    return "first" if preferred == in_id_order(texts)[0] else "second"


def human(pair: int, annotator: str, vote: str, texts: tuple[str, str] | None = None) -> dict:
    """A human label with orientation-free ``vote``, showing the responses as ``texts``."""
    one, two = texts or default_texts(pair)
    first = in_id_order((one, two))[0]
    choice = "tie" if vote == "tie" else ("a" if (one == first) == (vote == "first") else "b")
    return human_label_row(
        messages=messages(pair),
        response_a=one,
        response_b=two,
        choice=choice,
        annotator=annotator,
        origin=ORIGIN,
        source_row=1,
    )


def ai_row(
    pair: int,
    p_a: float,
    *,
    judge: str = "j1",
    method: str = "logprob",
    principle: str | None = "p1",
    orders: tuple[float | None, float | None] | None = None,
    texts: tuple[str, str] | None = None,
) -> dict:
    """An ai_labels row with soft label ``p_a``; A is the second text of ``texts``, B the first."""
    one, two = texts or default_texts(pair)
    a, b = two, one
    a_id, b_id = response_id(a), response_id(b)
    prompt = prompt_id(messages(pair))
    preferred = {"a": a_id, "b": b_id, "tie": None}[preference(p_a)]
    p_first, p_second = orders if orders is not None else (p_a, p_a)
    rule = method == "rule"
    return {
        "label_id": content_id(
            "test_ai_label", {"pair": pair, "judge": judge, "method": method, "p": [p_a, p_first, p_second]}
        ),
        "pair_id": pair_id(prompt, a_id, b_id),
        "prompt_id": prompt,
        "response_a_id": a_id,
        "response_b_id": b_id,
        "response_a": a,
        "response_b": b,
        "choice": preference(p_a),
        "preferred_id": preferred,
        "vote": orientation_free_vote(preferred, a_id, b_id),
        "judge_model": "rules" if rule else judge,
        "method": method,
        "principle_id": principle,
        "constitution_id": "c" * 64,
        "p_a_first": p_first,
        "p_a_second": p_second,
        "p_a": p_a,
        "orders_agree": None if None in (p_first, p_second) else orders_agree(p_first, p_second),
        "rule_id": "r1" if rule else None,
        "rationale": None,
        "principle_hash": "h" * 64,
        "judge_backend": None if rule else "hf",
        "params": "{}",
    }


def ai(
    pair: int,
    vote: str,
    confidence: float = 0.9,
    *,
    texts: tuple[str, str] | None = None,
    **kwargs,
) -> dict:
    """An AI label with orientation-free ``vote`` at ``confidence`` (= greatest(p_a, 1 - p_a))."""
    one, two = texts or default_texts(pair)
    if vote == "tie":
        return ai_row(pair, 0.5, texts=(one, two), **kwargs)
    preferred = in_id_order((one, two))[0 if vote == "first" else 1]
    p_a = confidence if preferred == two else 1 - confidence  # A is `two`
    return ai_row(pair, p_a, texts=(one, two), **kwargs)


def records(store: Store, query: str) -> list[dict]:
    return run_query(store, query).records()


def add_prompts(store: Store, families: dict[int, str]) -> None:
    rows = [prompt_record(messages(pair), "set", family).row() for pair, family in families.items()]
    store.append("prompts", rows, "r0")


@pytest.fixture
def judged(store: Store) -> Store:
    """Six pairs with human labels and one AI judge (j1) on each of them.

    pair  family   humans (x, y, z)          majority   j1 vote (confidence, principle)
    1     booking  first, first              first      first  (0.8, p1)  right
    2     privacy  second                    second     second (0.6, p1)  right
    3     booking  first                     first      first  (0.9, p2)  right
    4     privacy  second, second, first     second     first  (0.7, p2)  wrong
    5     booking  first, second             none       first  (0.9, p1)  not compared
    6     privacy  tie, tie                  tie        second (0.9, p1)  not compared
    """
    add_prompts(store, {1: "booking", 2: "privacy", 3: "booking", 4: "privacy", 5: "booking", 6: "privacy"})
    humans = {
        1: ["first", "first"],
        2: ["second"],
        3: ["first"],
        4: ["second", "second", "first"],
        5: ["first", "second"],
        6: ["tie", "tie"],
    }
    rows = [human(pair, "xyz"[i], vote) for pair, votes in humans.items() for i, vote in enumerate(votes)]
    store.append("human_labels", rows, "r1")
    j1 = [
        ai(1, "first", 0.8, principle="p1"),
        ai(2, "second", 0.6, principle="p1"),
        ai(3, "first", 0.9, principle="p2"),
        ai(4, "first", 0.7, principle="p2"),
        ai(5, "first", 0.9, principle="p1"),
        ai(6, "second", 0.9, principle="p1"),
    ]
    store.append("ai_labels", j1, "r2")
    return store


def agreement(store: Store) -> dict[tuple[str, str], dict]:
    return {(r["dimension"], r["value"]): r for r in records(store, "select * from ai_human_agreement")}


def test_human_majority_needs_strictly_more_votes(judged: Store) -> None:
    rows = records(judged, "select * from human_majority")
    by_prompt = {r["prompt_id"]: r for r in rows}
    majority = {pair: by_prompt[prompt_id(messages(pair))] for pair in range(1, 7)}
    assert [majority[p]["majority_vote"] for p in range(1, 7)] == [
        "first",
        "second",
        "first",
        "second",
        None,  # 1 first vs 1 second: no majority
        "tie",
    ]
    assert majority[4]["annotators"] == 3
    assert majority[4]["majority_share"] == pytest.approx(0.6667, abs=1e-4)
    assert majority[5]["majority_share"] == 0.5
    assert majority[2]["majority_share"] == 1.0


def test_ai_human_agreement_accuracy_and_kappa(judged: Store) -> None:
    rows = agreement(judged)
    # Compared: pairs 1-4 (pair 5 has no majority, pair 6's majority is a tie). j1 is right on 3 of 4.
    # AI votes (first, second, first, first) -> shares first 3/4, second 1/4;
    # human majorities (first, second, first, second) -> first 1/2, second 1/2.
    # p_e = 3/4 * 1/2 + 1/4 * 1/2 = 0.5; kappa = (0.75 - 0.5) / (1 - 0.5) = 0.5.
    overall = rows[("overall", "(all)")]
    assert (overall["labels"], overall["pairs"]) == (4, 4)
    assert overall["accuracy"] == 0.75
    assert overall["cohen_kappa"] == pytest.approx(0.5)
    assert rows[("judge_model", "j1")] == {**overall, "dimension": "judge_model", "value": "j1"}
    assert rows[("method", "logprob")]["accuracy"] == 0.75
    # p1 (pairs 1, 2): both right; AI and human shares both (1/2, 1/2): p_e = 0.5, kappa = 1.
    assert rows[("principle", "p1")]["labels"] == 2
    assert rows[("principle", "p1")]["accuracy"] == 1.0
    assert rows[("principle", "p1")]["cohen_kappa"] == pytest.approx(1.0)
    # p2 (pairs 3, 4): AI first, first; humans first, second -> accuracy 1/2;
    # p_e = 1 * 1/2 + 0 * 1/2 = 0.5 -> kappa 0.
    assert rows[("principle", "p2")]["accuracy"] == 0.5
    assert rows[("principle", "p2")]["cohen_kappa"] == pytest.approx(0.0)
    # booking (pairs 1, 3): all first on both sides -> accuracy 1, p_e = 1: kappa undefined (NULL).
    assert rows[("family", "booking")]["accuracy"] == 1.0
    assert rows[("family", "booking")]["cohen_kappa"] is None
    # privacy (pairs 2, 4): AI second, first; humans second, second -> accuracy 1/2;
    # p_e = 1/2 * 0 + 1/2 * 1 = 0.5 -> kappa 0.
    assert rows[("family", "privacy")]["accuracy"] == 0.5
    assert rows[("family", "privacy")]["cohen_kappa"] == pytest.approx(0.0)
    dimensions = [r["dimension"] for r in records(judged, "select dimension from ai_human_agreement")]
    assert dimensions == ["overall", "judge_model", "method", "principle", "principle", "family", "family"]


def test_an_ai_tie_counts_as_a_miss(judged: Store) -> None:
    judged.append(
        "ai_labels",
        [
            ai(1, "first", judge="j2"),
            ai(2, "second", judge="j2"),
            ai(3, "tie", judge="j2"),
            ai(4, "second", judge="j2"),
        ],
        "r3",
    )
    rows = agreement(judged)
    # j2: right on pairs 1, 2, 4; the tie on pair 3 is a miss -> accuracy 3/4.
    # AI shares first 1/4, second 2/4, tie 1/4; humans first 1/2, second 1/2.
    # p_e = 1/4 * 1/2 + 2/4 * 1/2 + 1/4 * 0 = 0.375; kappa = (0.75 - 0.375) / 0.625 = 0.6.
    assert rows[("judge_model", "j2")]["labels"] == 4
    assert rows[("judge_model", "j2")]["accuracy"] == 0.75
    assert rows[("judge_model", "j2")]["cohen_kappa"] == pytest.approx(0.6)
    # Overall, 8 labels on 4 pairs: 6 right. AI shares first 4/8, second 3/8, tie 1/8.
    # p_e = 1/2 * 1/2 + 3/8 * 1/2 = 0.4375; kappa = (0.75 - 0.4375) / 0.5625 = 0.5556.
    overall = rows[("overall", "(all)")]
    assert (overall["labels"], overall["pairs"]) == (8, 4)
    assert overall["accuracy"] == 0.75
    assert overall["cohen_kappa"] == pytest.approx(0.5556, abs=1e-4)


def test_position_consistency_rates(store: Store) -> None:
    rows = [
        # j1 logprob: (P(A) with A first, P(A) with A second)
        ai_row(1, 0.75, orders=(0.8, 0.7)),  # both orders prefer A: consistent; gap 0.1
        ai_row(2, 0.55, orders=(0.7, 0.4)),  # whichever was shown first both times; gap 0.3
        ai_row(3, 0.6, orders=(0.3, 0.9)),  # whichever was shown second both times; gap 0.6
        ai_row(4, 0.15, orders=(0.2, 0.1)),  # both prefer B: consistent; gap 0.1
        # j1 cot, clamped soft label: shown-first both times; gap 0.7
        ai_row(5, 0.55, method="cot", orders=(0.9, 0.2)),
        # Not counted: a rule label and a label judged in one order only.
        ai_row(6, 1.0, method="rule"),
        ai_row(7, 0.8, orders=(0.8, None)),
    ]
    store.append("ai_labels", rows, "r")
    result = records(store, "select * from position_consistency")
    assert result == [
        {
            "judge_model": "j1",
            "method": "cot",
            "labels": 1,
            "consistent_rate": 0.0,
            "first_position_rate": 1.0,
            "second_position_rate": 0.0,
            "mean_abs_order_gap": 0.7,
        },
        {
            "judge_model": "j1",
            "method": "logprob",
            "labels": 4,
            "consistent_rate": 0.5,  # 2 of 4
            "first_position_rate": 0.25,
            "second_position_rate": 0.25,
            "mean_abs_order_gap": 0.275,  # (0.1 + 0.3 + 0.6 + 0.1) / 4
        },
    ]


def test_length_bias_longer_wins_two_of_three(store: Store) -> None:
    ten, fifteen, twenty, thirty, forty = "a" * 10, "b" * 15, "c" * 20, "d" * 30, "e" * 40
    texts = {
        11: (ten, twenty),
        12: (thirty, fifteen),
        13: (ten, forty),
        14: (ten, "f" * 10),  # same length: never counted
        15: (ten, twenty),
    }
    humans = [
        human(11, "x", vote_for(texts[11], twenty), texts[11]),  # longer wins, ratio 20/10 = 2
        human(12, "x", vote_for(texts[12], thirty), texts[12]),  # longer wins, ratio 30/15 = 2
        human(13, "x", vote_for(texts[13], ten), texts[13]),  # shorter wins, ratio 10/40 = 0.25
        human(14, "x", "first", texts[14]),  # equal lengths: not counted
        human(15, "x", "tie", texts[15]),  # tie: not counted
        human(11, "y", vote_for(texts[11], ten), texts[11]),  # shorter wins, ratio 0.5
    ]
    store.append("human_labels", humans, "r1")
    machine = [
        ai(11, vote_for(texts[11], twenty), texts=texts[11]),  # longer wins, ratio 2
        ai(13, vote_for(texts[13], forty), texts=texts[13]),  # longer wins, ratio 4
        ai(12, vote_for(texts[12], fifteen), texts=texts[12], method="cot"),  # shorter, ratio 0.5
        ai(15, "tie", texts=texts[15]),  # tie: not counted
    ]
    store.append("ai_labels", machine, "r2")
    rows = {(r["source"], r["labeller"], r["method"]): r for r in records(store, "select * from length_bias")}
    assert set(rows) == {
        ("ai", "(all)", "(all)"),
        ("ai", "j1", "logprob"),
        ("ai", "j1", "cot"),
        ("human", "(all)", "(all)"),
        ("human", "x", "human"),
        ("human", "y", "human"),
    }
    # x: the longer response wins 2 of 3; mean ratio (2 + 2 + 0.25) / 3 = 1.4167.
    assert rows[("human", "x", "human")]["labels"] == 3
    assert rows[("human", "x", "human")]["longer_wins_rate"] == pytest.approx(0.6667, abs=1e-4)
    assert rows[("human", "x", "human")]["mean_length_ratio"] == pytest.approx(1.4167, abs=1e-4)
    assert rows[("human", "y", "human")]["longer_wins_rate"] == 0.0
    # All humans: 2 of 4, mean ratio (2 + 2 + 0.25 + 0.5) / 4 = 1.1875.
    assert rows[("human", "(all)", "(all)")]["labels"] == 4
    assert rows[("human", "(all)", "(all)")]["longer_wins_rate"] == 0.5
    assert rows[("human", "(all)", "(all)")]["mean_length_ratio"] == pytest.approx(1.1875)
    assert rows[("ai", "j1", "logprob")]["longer_wins_rate"] == 1.0
    assert rows[("ai", "j1", "logprob")]["mean_length_ratio"] == pytest.approx(3.0)
    # All AI: 2 of 3, mean ratio (2 + 4 + 0.5) / 3 = 2.1667.
    assert rows[("ai", "(all)", "(all)")]["longer_wins_rate"] == pytest.approx(0.6667, abs=1e-4)
    assert rows[("ai", "(all)", "(all)")]["mean_length_ratio"] == pytest.approx(2.1667, abs=1e-4)
    order = [(r["source"], r["labeller"]) for r in records(store, "select * from length_bias")]
    assert order[0] == ("ai", "(all)") and order[3] == ("human", "(all)")


def test_calibration_bins_and_expected_calibration_error(store: Store) -> None:
    # Pairs 21-29: one annotator votes 'first' on each (a decisive majority); pair 30 is split.
    humans = [human(pair, "x", "first") for pair in range(21, 31)] + [human(30, "y", "second")]
    store.append("human_labels", humans, "r1")
    right, wrong = "first", "second"
    cal = [
        # bin 0.5-0.6: 0.55 x 3, 1 right -> mean 0.55, accuracy 1/3, gap 0.2167
        ai(21, right, 0.55, judge="cal"),
        ai(22, wrong, 0.55, judge="cal"),
        ai(23, wrong, 0.55, judge="cal"),
        # bin 0.6-0.7 (0.6 falls in it): both right -> mean 0.625, accuracy 1, gap -0.375
        ai(24, right, 0.6, judge="cal"),
        ai(25, right, 0.65, judge="cal"),
        # bin 0.9-1.0 (1.0 falls in it): 3 of 4 right -> mean 0.95, accuracy 0.75, gap 0.2
        ai(26, right, 1.0, judge="cal"),
        ai(27, wrong, 0.9, judge="cal"),
        ai(28, right, 0.95, judge="cal"),
        ai(29, right, 0.95, judge="cal"),
        # No human majority: not counted.
        ai(30, right, 0.95, judge="cal"),
        # A perfectly calibrated judge: confidence 1, always right.
        ai(21, right, 1.0, judge="sure"),
        ai(22, right, 1.0, judge="sure"),
    ]
    store.append("ai_labels", cal, "r2")
    bins = records(store, "select * from calibration where judge_model = 'cal'")
    assert [(b["bin"], b["labels"]) for b in bins] == [("0.5-0.6", 3), ("0.6-0.7", 2), ("0.9-1.0", 4)]
    assert [b["mean_confidence"] for b in bins] == pytest.approx([0.55, 0.625, 0.95])
    assert [b["accuracy"] for b in bins] == pytest.approx([0.3333, 1.0, 0.75], abs=1e-4)
    assert [b["gap"] for b in bins] == pytest.approx([0.2167, -0.375, 0.2], abs=1e-4)
    # ECE = (3 * 0.21667 + 2 * 0.375 + 4 * 0.2) / 9 = (0.65 + 0.75 + 0.8) / 9 = 0.2444.
    errors = {r["judge_model"]: r for r in records(store, "select * from calibration_error")}
    assert errors["cal"]["labels"] == 9
    assert errors["cal"]["ece"] == pytest.approx(0.2444, abs=1e-4)
    assert errors["sure"] == {"judge_model": "sure", "labels": 2, "ece": 0.0}


def test_ai_disagreement_bench_lists_confident_contradictions_most_confident_first(judged: Store) -> None:
    judged.append(
        "ai_labels",
        [
            ai(1, "second", 0.95, judge="j2"),  # contradicts first
            ai(2, "tie", judge="j2"),  # a tie: not a contradiction
            ai(3, "second", 0.55, judge="j2"),  # contradicts first, barely
            ai(5, "second", 0.99, judge="j2"),  # no human majority: not listed
            ai(6, "first", 0.99, judge="j2"),  # the majority is a tie: not listed
        ],
        "r3",
    )
    rows = records(judged, "select * from ai_disagreement_bench")
    summary = [
        (
            r["prompt"],
            r["judge_model"],
            r["ai_confidence"],
            r["ai_vote"],
            r["human_vote"],
            r["human_annotators"],
        )
        for r in rows
    ]
    assert summary == [
        ("Question number 1?", "j2", 0.95, "second", "first", 2),
        ("Question number 4?", "j1", 0.7, "first", "second", 3),
        ("Question number 3?", "j2", 0.55, "second", "first", 1),
    ]
    assert rows[0]["family"] == "booking" and rows[0]["principle_id"] == "p1"
    assert (rows[0]["response_first"], rows[0]["response_second"]) == in_id_order(default_texts(1))
    assert rows[0]["pair_id"] == pair_id(prompt_id(messages(1)), *map(response_id, default_texts(1)))


def preference_row(set_id: str, pair: int, decided_by: str, target: float, weight: float) -> dict:
    chosen, rejected = default_texts(pair)
    prompt = prompt_id(messages(pair))
    return {
        "row_id": content_id("preference", {"set": set_id, "pair": pair}),
        "set_id": set_id,
        "pair_id": pair_id(prompt, response_id(chosen), response_id(rejected)),
        "prompt_id": prompt,
        "family": "booking",
        "prompt": '[{"role": "user", "content": "q"}]',
        "chosen_id": response_id(chosen),
        "rejected_id": response_id(rejected),
        "chosen": chosen,
        "rejected": rejected,
        "target": target,
        "weight": weight,
        "decided_by": decided_by,
        "human_labels": 0,
        "human_agreement": None,
        "ai_labels": 1,
        "ai_p_chosen": target,
        "label_ids": [],
        "principle_ids": [],
        "constitution_ids": [],
    }


def test_preference_summary_counts_rows_by_deciding_source(store: Store) -> None:
    first = [
        preference_row("set-a", 1, "human", 1.0, 1.0),
        preference_row("set-a", 2, "human-majority", 0.75, 0.5),
        preference_row("set-a", 3, "human-majority", 0.75, 0.5),
        preference_row("set-a", 4, "rule", 1.0, 1.0),
        preference_row("set-a", 5, "ai", 0.6, 0.5),
    ]
    store.append("preferences", first, "r1")
    store.append("preference_sets", [{"set_id": "set-a", "policy": "{}", "rows": 5, "counts": "{}"}], "r1")
    store.append("preferences", [preference_row("set-b", 1, "ai", 0.7, 0.25)], "r2")
    store.append("preference_sets", [{"set_id": "set-b", "policy": "{}", "rows": 1, "counts": "{}"}], "r2")
    rows = records(store, "select * except (created_at) from preference_summary")
    # Newest first. set-a: mean target (1 + 0.75 + 0.75 + 1 + 0.6) / 5 = 0.82, mean weight 3.5 / 5 = 0.7.
    assert rows == [
        {
            "set_id": "set-b",
            "rows": 1,
            "human": 0,
            "human_majority": 0,
            "rule": 0,
            "ai": 1,
            "mean_target": 0.7,
            "mean_weight": 0.25,
        },
        {
            "set_id": "set-a",
            "rows": 5,
            "human": 1,
            "human_majority": 2,
            "rule": 1,
            "ai": 1,
            "mean_target": 0.82,
            "mean_weight": 0.7,
        },
    ]
    # The merge stage: 6 rows over 5 distinct pairs (pair 1 is in both sets).
    merge = records(store, "select items_in, rows_out from stage_counts where stage = 'merge'")
    assert merge == [{"items_in": 5, "rows_out": 6}]


def test_audit_summary_on_an_empty_store(store: Store) -> None:
    summary = audit_summary(store)
    assert list(summary.sections) == list(AUDIT_QUERIES)
    for name in (*AI_SECTIONS, "length_bias", "preference_summary", "human_agreement", "disagreements"):
        assert summary.sections[name].rows == [], name


def test_audit_summary_with_human_labels_only(store: Store) -> None:
    add_prompts(store, {1: "booking", 2: "privacy"})
    texts = ("Short.", "A longer answer.")
    store.append(
        "human_labels",
        [human(1, "x", "first", texts), human(1, "y", "second", texts), human(2, "x", "second")],
        "r",
    )
    summary = audit_summary(store)
    for name in (*AI_SECTIONS, "preference_summary"):
        assert summary.sections[name].rows == [], name
    bias = summary.sections["length_bias"].records()
    assert {(r["source"], r["labeller"]) for r in bias} == {
        ("human", "(all)"),
        ("human", "x"),
        ("human", "y"),
    }
    assert summary.sections["disagreements"].rows  # pair 1 is split


def test_audit_command_titles_the_ai_sections(judged: Store) -> None:
    result = CliRunner().invoke(app, ["audit", "--store", str(judged.root)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "AI-human agreement" in result.output
    assert "AI labels against the human majority" in result.output
    assert "Preference sets (rows by deciding source): none yet" in result.output
