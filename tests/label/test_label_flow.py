"""The judge with a real model, and the label and merge flows as users run them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tasks.backends.settings import BackendSettings
from tasks.constitution.model import load_constitution
from tasks.generate.generation import PromptItem
from tasks.label.judge import JudgeSettings, judge, plan_comparisons
from tasks.label.pairs import Pair, PairSettings, make_pair
from tasks.label.soft_labels import preference
from tests.conftest import PROJECT_ROOT, run_charter, stored_files
from tests.rule_cases import RULE_CASES, store_with_rule_cases

pytestmark = pytest.mark.integration

CONSTITUTION = PROJECT_ROOT / "constitutions" / "healthcare-scheduling.yaml"

PREAMBLE = "Thank you for reaching out to the clinic scheduling line! "


def _pairs() -> list[Pair]:
    pairs = []
    for family, question, good, bad in RULE_CASES:
        prompt = PromptItem(f"p-{family}-{len(pairs)}", family, ({"role": "user", "content": question},))
        pair = make_pair(prompt, good, PREAMBLE + bad)
        assert pair is not None
        pairs.append(pair)
    return pairs


def test_swapping_the_order_mirrors_the_per_order_probabilities_with_a_real_model(hf_backend) -> None:
    constitution = load_constitution(CONSTITUTION)
    settings = JudgeSettings(methods=("logprob",))
    # One response is the other with a fixed preamble inserted.
    pairs = []
    for family, question, good, _ in RULE_CASES:
        prompt = PromptItem(f"q-{family}", family, ({"role": "user", "content": question},))
        pair = make_pair(prompt, good, PREAMBLE + good)
        assert pair is not None
        pairs.append(pair)
    swapped = [
        Pair(p.pair_id, p.prompt, p.response_b_id, p.response_b, p.response_a_id, p.response_a) for p in pairs
    ]
    rows = judge(
        hf_backend, plan_comparisons(pairs, constitution, settings, "m", "hf"), constitution, settings
    )
    mirrored = judge(
        hf_backend, plan_comparisons(swapped, constitution, settings, "m", "hf"), constitution, settings
    )
    assert len(rows) == len(mirrored) == len(pairs)
    for row, other in zip(rows, mirrored, strict=True):
        assert (row["pair_id"], row["principle_id"]) == (other["pair_id"], other["principle_id"])
        assert row["label_id"] != other["label_id"]
        # Swapped A is the original B: shown first, it is what the original saw with A second.
        assert other["p_a_first"] == pytest.approx(1 - row["p_a_second"], abs=1e-4)
        assert other["p_a_second"] == pytest.approx(1 - row["p_a_first"], abs=1e-4)
        assert other["p_a"] == pytest.approx(1 - row["p_a"], abs=1e-4)
        for label in (row, other):
            assert label["p_a"] == pytest.approx((label["p_a_first"] + label["p_a_second"]) / 2)
            assert label["orders_agree"] == (
                preference(label["p_a_first"]) == preference(label["p_a_second"])
            )
            assert label["choice"] == preference(label["p_a"])
            expected = {"a": label["response_a_id"], "b": label["response_b_id"], "tie": None}[
                label["choice"]
            ]
            assert label["preferred_id"] == expected
        assert row["vote"] == other["vote"]  # the same preference, however it was shown
    # The raw per-order probabilities differ: where an option stands moves this model.
    assert any(abs(r["p_a_first"] - r["p_a_second"]) > 1e-3 for r in rows)


def test_label_and_merge_flows_label_rule_breakers_correctly_and_resume(tmp_path: Path) -> None:
    from flows.label import label
    from flows.merge import merge

    store = store_with_rule_cases(tmp_path / "store")
    arguments = {
        "store": str(store.root),
        "constitution": str(CONSTITUTION),
        "prompts": "rules",
        "backend": BackendSettings(kind="hf"),
        "pairs": PairSettings(),
        "judge": JudgeSettings(methods=("logprob", "rule")),
        "batch_size": 3,
    }
    first = label(**arguments)
    assert first.pairs == len(RULE_CASES) and first.batches == 2
    labels = store.read("ai_labels").to_pylist()
    good = {case[2] for case in RULE_CASES}
    rules = [r for r in labels if r["method"] == "rule"]
    assert {r["pair_id"] for r in rules} == {r["pair_id"] for r in labels}  # every pair has a rule verdict
    for row in rules:
        assert (row["response_a"] if row["choice"] == "a" else row["response_b"]) in good
        assert row["rule_id"] and row["judge_model"] == "rules"
    judged = [r for r in labels if r["method"] == "logprob"]
    assert len(judged) == len(RULE_CASES)
    for row in judged:
        assert 0 < row["p_a_first"] < 1 and 0 < row["p_a_second"] < 1
        assert row["p_a"] == pytest.approx((row["p_a_first"] + row["p_a_second"]) / 2)
        assert (
            row["principle_id"] and row["constitution_id"] == load_constitution(CONSTITUTION).constitution_id
        )
    assert first.added("ai_labels") == len(labels)

    again = label(**arguments)
    assert again.batches_skipped == again.batches and again.added("ai_labels") == 0
    assert store.count("ai_labels") == len(labels)

    merged = merge(store=str(store.root))
    rows = store.read("preferences").to_pylist()
    assert len(rows) == merged.rows == len(RULE_CASES)
    for row in rows:
        # Rules override the judge by default: the good response is chosen. Nobody labelled these
        # pairs, so each rule's confidence is its prior's: Beta(4, 1) -> 4 / 5.
        assert row["decided_by"] == "rule" and row["chosen"] in good and row["target"] == pytest.approx(0.8)
        assert set(row["label_ids"]) <= {r["label_id"] for r in rules}
    remerged = merge(store=str(store.root))
    assert remerged.set_id == merged.set_id and remerged.added("preferences") == 0


def test_bad_template_policy_and_options_fail_before_any_work(tmp_path: Path) -> None:
    store = store_with_rule_cases(tmp_path / "store")
    before = stored_files(store)
    template = tmp_path / "judge.txt"
    template.write_text("Conversation: {conversation}\n{principle}\n(A) {response_a}\n", encoding="utf-8")
    common = ["--store", str(store.root), "--constitution", str(CONSTITUTION), "--prompts", "rules"]
    result = run_charter("label", *common, "--template", str(template), "--backend", "hf")
    assert result.returncode == 1
    assert f"{template} [response_b]: the template is missing the placeholder {{response_b}}" in result.stderr

    result = run_charter("label", *common, "--pairs", "some")
    assert result.returncode == 1 and "unknown --pairs 'some'" in result.stderr
    result = run_charter("label", *common, "--method", "vibes")
    assert result.returncode == 1 and "unknown --method 'vibes'" in result.stderr

    policy = tmp_path / "policy.yaml"
    policy.write_text("ai_min_margin: 0.2\nhuman_overide: false\n", encoding="utf-8")
    result = run_charter("merge", "--store", str(store.root), "--policy", str(policy))
    assert result.returncode == 1
    assert f"{policy}:2 [human_overide]: unknown field" in result.stderr
    policy.write_text("ai_min_margin: lots\n", encoding="utf-8")
    result = run_charter("merge", "--store", str(store.root), "--policy", str(policy))
    assert result.returncode == 1 and f"{policy}:1 [ai_min_margin]" in result.stderr
    assert stored_files(store) == before


def test_export_preferences_writes_the_latest_set_in_trl_format(tmp_path: Path) -> None:
    from flows.merge import merge

    store = store_with_rule_cases(tmp_path / "store")
    from tasks.label.judge import rule_labels
    from tasks.label.pairs import plan_pairs

    plan = plan_pairs(store, {"prompt_set": "rules"}, PairSettings())
    store.append("ai_labels", rule_labels(plan.pairs, load_constitution(CONSTITUTION)), "setup")
    merged = merge(store=str(store.root))
    output = tmp_path / "prefs.jsonl"
    result = run_charter("export", "preferences", "--store", str(store.root), "-o", str(output))
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    assert len(records) == len(RULE_CASES) and {r["set_id"] for r in records} == {merged.set_id}
    good = {case[2] for case in RULE_CASES}
    for record in records:
        assert record["prompt"][-1]["role"] == "user"
        assert record["chosen"][0]["content"] in good and record["rejected"][0]["content"] not in good
