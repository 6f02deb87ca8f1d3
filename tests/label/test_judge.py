"""The AI judge's pure parts: soft-label maths, templates, principle sampling, rule verdicts."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tasks.constitution.model import load_constitution
from tasks.constitution.rules import applicable_rules, violation
from tasks.core.conversation import parse_hh_transcript
from tasks.core.errors import CharterError, InputError
from tasks.generate.generation import PromptItem
from tasks.label.judge import (
    DEFAULT_TEMPLATE,
    JudgeSettings,
    judge,
    judge_messages,
    load_template,
    plan_comparisons,
    rule_labels,
    sample_principles,
    template_problems,
)
from tasks.label.pairs import make_pair
from tasks.label.soft_labels import (
    clamp,
    option_probability,
    order_average,
    orders_agree,
    p_a_from_orders,
    preference,
)
from tasks.store.exports import pair_record

HEALTHCARE = Path(__file__).resolve().parents[2] / "constitutions" / "healthcare-scheduling.yaml"


def test_option_probability_normalises_two_logprobs() -> None:
    # 0.6 and 0.2 of the whole vocabulary: A's share of the two is 0.6 / 0.8.
    assert option_probability(math.log(0.6), math.log(0.2)) == pytest.approx(0.75)
    assert option_probability(math.log(0.2), math.log(0.6)) == pytest.approx(0.25)
    # Far in the tail the difference still decides: 1 / (1 + e^-1), with no underflow to 0/0.
    assert option_probability(-1000.0, -1001.0) == pytest.approx(1 / (1 + math.exp(-1)))
    assert option_probability(-math.inf, -math.inf) == 0.5


def test_both_orders_give_p_a_and_position_bias_cancels() -> None:
    # Order 1 shows A as (A): P(A) = 0.3 / 0.4 = 0.75. Order 2 shows A as (B): P(B) = 0.6 / 0.8 = 0.75.
    first = {"A": math.log(0.3), "B": math.log(0.1)}
    second = {"A": math.log(0.2), "B": math.log(0.6)}
    p1, p2 = p_a_from_orders(first, second)
    assert (p1, p2) == (pytest.approx(0.75), pytest.approx(0.75))
    assert orders_agree(p1, p2) and order_average(p1, p2) == pytest.approx(0.75)
    # A judge that always picks the first option (0.8) prefers A when A is first and B when B is:
    # p_a_first 0.8, p_a_second 0.2, the mean 0.5 carries no preference, and the orders disagree.
    biased = {"A": math.log(0.8), "B": math.log(0.2)}
    p1, p2 = p_a_from_orders(biased, biased)
    assert (p1, p2) == (pytest.approx(0.8), pytest.approx(0.2))
    assert not orders_agree(p1, p2)
    assert order_average(p1, p2) == pytest.approx(0.5)


def test_preference_clamp_and_bad_band() -> None:
    assert [preference(p) for p in (0.7, 0.3, 0.5)] == ["a", "b", "tie"]
    assert orders_agree(0.5, 0.5) and not orders_agree(0.5, 0.6)
    assert clamp(0.97, 0.4, 0.6) == 0.6
    assert clamp(0.02, 0.4, 0.6) == 0.4
    assert clamp(0.55, 0.4, 0.6) == 0.55
    with pytest.raises(ValueError, match=r"must contain 0\.5"):
        clamp(0.5, 0.6, 0.9)
    with pytest.raises(ValueError, match="clamp"):
        JudgeSettings(cot_clamp=(0.6, 0.9))


def test_templates_must_have_exactly_the_placeholders(tmp_path: Path) -> None:
    assert template_problems(DEFAULT_TEMPLATE, "default") == []
    missing = tmp_path / "missing.txt"
    missing.write_text("{conversation}\n{principle}\n(A) {response_a}\n", encoding="utf-8")
    with pytest.raises(InputError) as caught:
        load_template(missing)
    assert [(p.path, p.field) for p in caught.value.problems] == [(str(missing), "response_b")]
    assert "missing the placeholder {response_b}" in str(caught.value)
    unknown = tmp_path / "unknown.txt"
    unknown.write_text(
        "{conversation}\n{principle}\n{response_a}\n{response_b}\n{answer}\n", encoding="utf-8"
    )
    with pytest.raises(InputError) as caught:
        load_template(unknown)
    (problem,) = caught.value.problems
    assert (problem.line, problem.field) == (
        5,
        "answer",
    ) and "unknown placeholder {answer}" in problem.message
    braces = tmp_path / "braces.txt"
    braces.write_text('{conversation} {principle} {response_a} {response_b} {"json": 1', encoding="utf-8")
    with pytest.raises(InputError, match="literal brace"):
        load_template(braces)
    with pytest.raises(InputError, match="file not found"):
        load_template(tmp_path / "nope.txt")


def _prompt(text: str, family: str | None) -> PromptItem:
    return PromptItem(prompt_id=f"p-{text}", family=family, messages=({"role": "user", "content": text},))


def test_principles_are_sampled_per_pair_reproducibly_within_the_familys_tags() -> None:
    constitution = load_constitution(HEALTHCARE)
    pair = make_pair(_prompt("I have chest pain", "urgent-symptoms"), "Call 911 now.", "Book tomorrow?")
    assert pair is not None
    drawn = sample_principles(constitution, pair, 3, seed=0)
    assert len({p.id for p in drawn}) == 3
    assert all(p.comparison and p.applies_to("urgent-symptoms") for p in drawn)
    assert sample_principles(constitution, pair, 3, seed=0) == drawn
    draws = {tuple(p.id for p in sample_principles(constitution, pair, 1, seed=s)) for s in range(20)}
    assert len(draws) > 1  # the seed matters
    # Asking for more principles than apply gives each applicable principle once.
    applicable = [p for p in constitution.principles if p.comparison and p.applies_to("urgent-symptoms")]
    assert len(sample_principles(constitution, pair, 99, seed=0)) == len(applicable)


def test_a_family_no_comparison_principle_admits_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "name: c\nversion: '1'\nprinciples:\n  - id: x\n    title: X\n    tags: [booking]\n"
        "    comparison: Choose the better booking.\n",
        encoding="utf-8",
    )
    pair = make_pair(_prompt("hello", "billing"), "one", "two")
    assert pair is not None
    with pytest.raises(
        CharterError, match="no principle with a comparison instruction for prompt family 'billing'"
    ):
        sample_principles(load_constitution(path), pair, 1, seed=0)


def test_identical_responses_make_no_pair_and_pairs_are_canonical() -> None:
    prompt = _prompt("hi", None)
    assert make_pair(prompt, "same", "  same\n") is None
    one, other = make_pair(prompt, "x", "y"), make_pair(prompt, "y", "x")
    assert one == other and one is not None and one.response_a_id < one.response_b_id


def test_label_ids_change_with_model_method_template_and_principle(tmp_path: Path) -> None:
    constitution = load_constitution(HEALTHCARE)
    pair = make_pair(_prompt("Can I book a visit?", "booking"), "Yes, when?", "No.")
    assert pair is not None
    settings = JudgeSettings(methods=("logprob", "cot"), principles_per_pair=2)
    comparisons = plan_comparisons([pair], constitution, settings, "m", "hf")
    assert len(comparisons) == 4 and len({c.label_id for c in comparisons}) == 4
    assert [c.label_id for c in plan_comparisons([pair], constitution, settings, "m", "hf")] == [
        c.label_id for c in comparisons
    ]
    other_model = plan_comparisons([pair], constitution, settings, "m2", "hf")
    assert not {c.label_id for c in other_model} & {c.label_id for c in comparisons}
    template = tmp_path / "t.txt"
    template.write_text("Q: {conversation} P: {principle} A: {response_a} B: {response_b}", encoding="utf-8")
    retemplated = plan_comparisons(
        [pair], constitution, settings.model_copy(update={"template_path": str(template)}), "m", "hf"
    )
    assert not {c.label_id for c in retemplated} & {c.label_id for c in comparisons}


def test_judge_messages_swap_the_options_and_ask_for_reasoning_only_for_cot() -> None:
    constitution = load_constitution(HEALTHCARE)
    pair = make_pair(_prompt("Can I book a visit?", "booking"), "first reply", "second reply")
    assert pair is not None
    principle = sample_principles(constitution, pair, 1, seed=0)[0]
    shown = judge_messages(DEFAULT_TEMPLATE, pair, principle, a_shown_first=True, cot=False)[0]["content"]
    swapped = judge_messages(DEFAULT_TEMPLATE, pair, principle, a_shown_first=False, cot=True)[0]["content"]
    assert f"(A) {pair.response_a}\n(B) {pair.response_b}" in shown
    assert f"(A) {pair.response_b}\n(B) {pair.response_a}" in swapped
    assert principle.comparison in shown and "Human: Can I book a visit?" in shown
    assert "explain" not in shown and "explain" in swapped


def test_the_judge_shows_the_conversation_exactly_as_the_standard_export_writes_it() -> None:
    messages = (
        {"role": "user", "content": "Can I book a visit?"},
        {"role": "assistant", "content": "Which day suits you?"},
        {"role": "user", "content": "Tuesday."},
    )
    turns = "Human: Can I book a visit?\n\nAssistant: Which day suits you?\n\nHuman: Tuesday."
    pair = make_pair(PromptItem("p", "booking", messages), "Tuesday at 10 is free.", "Please call.")
    assert pair is not None
    principle = sample_principles(load_constitution(HEALTHCARE), pair, 1, seed=0)[0]
    shown = judge_messages(DEFAULT_TEMPLATE, pair, principle, a_shown_first=True, cot=False)[0]["content"]
    assert f"assistant:\n\n{turns}\n\n{principle.comparison}" in shown
    record = pair_record(list(messages), "Tuesday at 10 is free.", "Please call.", "standard")
    assert record["prompt"] == f"\n\n{turns}\n\nAssistant:"
    # The transcript is hh-rlhf's: the importer reads it back, with the chosen reply as the last turn.
    reply = {"role": "assistant", "content": "Tuesday at 10 is free."}
    assert parse_hh_transcript(record["prompt"] + record["chosen"]) == [*messages, reply]


EMERGENCY = "I have crushing chest pain and my left arm is numb, can I see someone this week?"


def test_rules_apply_on_their_trigger_and_decide_only_when_one_response_breaks_them() -> None:
    constitution = load_constitution(HEALTHCARE)
    messages = ({"role": "user", "content": EMERGENCY},)
    ids = {(a.principle.id, a.rule.id) for a in applicable_rules(constitution, "urgent-symptoms", messages)}
    assert ("urgent-escalation", "escalate-physical-emergency") in ids
    calm = ({"role": "user", "content": "Can I book a checkup next week?"},)
    assert not any(a.rule.id.startswith("escalate") for a in applicable_rules(constitution, "booking", calm))

    good = "Please call 911 or go to the nearest emergency room right now. I can book a follow-up later."
    bad = "Sure! I have an opening on Thursday at 10am with Dr. Lee. Shall I book it?"
    worse = "Sounds like you have a muscle strain; Thursday at 10am is open."
    pair = make_pair(PromptItem("p", "urgent-symptoms", messages), bad, good)
    assert pair is not None
    rows = rule_labels([pair], constitution)
    assert {r["rule_id"] for r in rows} == {
        "escalate-physical-emergency",
        "escalate-physical-emergency-first",
    }
    for row in rows:
        preferred_text = row["response_a"] if row["choice"] == "a" else row["response_b"]
        assert preferred_text == good
        assert row["p_a"] == row["p_a_first"] == row["p_a_second"] in (0.0, 1.0)
        assert row["orders_agree"] is True and row["judge_model"] == "rules" and row["method"] == "rule"
        assert row["constitution_id"] == constitution.constitution_id and row["rationale"]
    # Both break the escalation rules: those rules tell them apart no more.
    both_bad = make_pair(PromptItem("p", "urgent-symptoms", messages), bad, worse)
    assert both_bad is not None
    assert not [r for r in rule_labels([both_bad], constitution) if r["rule_id"].startswith("escalate")]


def test_word_bounds_and_forbidden_patterns_explain_the_violation(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "name: c\nversion: '1'\nprinciples:\n  - id: brief\n    title: Brief\n    rules:\n"
        "      - id: short\n        max_words: 5\n      - id: no-price\n        must_not_match: '\\$\\d+'\n",
        encoding="utf-8",
    )
    constitution = load_constitution(path)
    # In rule id order.
    no_price, short = (
        a.rule for a in applicable_rules(constitution, None, [{"role": "user", "content": "?"}])
    )
    assert (no_price.id, short.id) == ("no-price", "short")
    assert violation(short, "one two three four five") is None
    assert "6 words, more than the 5" in (violation(short, "one two three four five six") or "")
    assert "'$40'" in (violation(no_price, "It costs $40.") or "")


class ScriptedJudge:
    """A stand-in at the model boundary: prefers whichever option contains "GOOD", by a margin
    that depends on where it stands, and "reasons" by quoting the option shown as (A)."""

    name = "scripted"
    model_id = "scripted-judge"

    def __init__(self) -> None:
        self.prefixes: list[str] = []

    @staticmethod
    def _options(messages) -> tuple[str, str]:
        text = messages[-1]["content"]
        first = text.split("(A) ", 1)[1].split("\n(B) ", 1)[0]
        second = text.split("\n(B) ", 1)[1].split("\n", 1)[0]
        return first, second

    def generate(self, conversations, sampling, seeds):
        from tasks.backends.base import Completion

        return [[Completion(f"(A) is {self._options(c)[0]}", "stop", 3)] for c in conversations]

    def next_token_logprobs(self, conversations, candidates, assistant_prefix=""):
        self.prefixes = list(assistant_prefix)
        results = []
        for messages in conversations:
            first, _ = self._options(messages)
            # P(GOOD) is 0.9 when GOOD is shown first and 0.7 when it is shown second.
            p_first_option = 0.9 if "GOOD" in first else 0.3
            results.append({"A": math.log(p_first_option), "B": math.log(1 - p_first_option)})
        return results


def test_judge_pairs_each_comparisons_two_orders_and_clamps_cot() -> None:
    constitution = load_constitution(HEALTHCARE)
    prompts = [_prompt(f"Can I book visit {i}?", "booking") for i in range(3)]
    pairs = [make_pair(p, f"GOOD reply {i}", f"poor reply {i}") for i, p in enumerate(prompts)]
    assert all(pairs)
    settings = JudgeSettings(methods=("logprob", "cot"), cot_clamp=(0.4, 0.6))
    backend = ScriptedJudge()
    rows = judge(backend, plan_comparisons(pairs, constitution, settings, "m", "s"), constitution, settings)
    assert len(rows) == 6
    for row in rows:
        good_is_a = row["response_a"].startswith("GOOD")
        # GOOD first: P(GOOD) = 0.9; GOOD second: P(option B) = 1 - 0.3 = 0.7.
        p_first, p_second = (0.9, 0.7) if good_is_a else (1 - 0.7, 1 - 0.9)
        assert (row["p_a_first"], row["p_a_second"]) == (pytest.approx(p_first), pytest.approx(p_second))
        good = row["response_a"] if good_is_a else row["response_b"]
        assert row["preferred_id"] == (row["response_a_id"] if good_is_a else row["response_b_id"])
        assert good.startswith("GOOD") and row["orders_agree"] is True
        if row["method"] == "logprob":
            assert row["p_a"] == pytest.approx(0.8 if good_is_a else 0.2) and row["rationale"] is None
        else:
            assert row["p_a"] == pytest.approx(0.6 if good_is_a else 0.4)  # 0.8 / 0.2 clamped
            first_shown, second_shown = row["response_a"], row["response_b"]
            assert (
                row["rationale"]
                == f"A shown first: (A) is {first_shown}\nA shown second: (A) is {second_shown}"
            )
    # The cot labels' log-probabilities were read after each order's own reasoning.
    assert all(
        prefix.startswith("(A) is ") and prefix.endswith("So the answer is: (") for prefix in backend.prefixes
    )
