"""Held-out preference evaluation (``charter eval --preferences``): the accuracies on worked numbers,
the judge's two orders through a scripted backend, the inputs (formats, pair ids, the limit, the
overlap refusal), and the real command on hh-rlhf pairs with a trained reward model and a policy.

Unit tests fake only the models (log-probs, a reward ensemble's probabilities, a judge's option
log-probs); the integration tests train a small MiniLM reward model and load real SmolLM2 folders.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import pytest

from tasks.constitution.model import load_constitution
from tasks.core.conversation import pair_id, response_id
from tasks.core.errors import CharterError, InputError
from tasks.evaluate import preferences as preference_eval
from tasks.evaluate.preference_eval_inputs import (
    detect_format,
    file_records,
    held_out_pairs,
    limited,
    overlaps,
)
from tasks.evaluate.preferences import judge_figures, judge_preference_accuracy, policy_figures
from tasks.evaluate.settings import PreferenceEvalSettings
from tasks.ingest.prompt_sets import prompt_record
from tasks.train.lineage import write_lineage
from tests.conftest import PROJECT_ROOT, run_charter

HH = PROJECT_ROOT.parent / "shared" / "data" / "hh-rlhf" / "harmless-base-test-sample.jsonl"
CONSTITUTION = PROJECT_ROOT / "constitutions" / "healthcare-scheduling.yaml"
needs_hh = pytest.mark.skipif(not HH.is_file(), reason="../shared/data (hh-rlhf sample) is absent")


def _record(prompt: str, chosen: str, rejected: str, target: float = 1.0) -> dict[str, Any]:
    messages = [{"role": "user", "content": prompt}]
    prompt_id = prompt_record(messages, "labels", None).prompt_id
    return {
        "pair_id": pair_id(prompt_id, response_id(chosen), response_id(rejected)),
        "prompt_id": prompt_id,
        "prompt": messages,
        "chosen": chosen,
        "rejected": rejected,
        "target": target,
        "weight": 1.0,
    }


# --- the policy's figures -------------------------------------------------------------------


def test_implicit_reward_and_logprob_margin_on_worked_numbers() -> None:
    # Pair 1: margin -10 - -12 = 2 (hit); implicit (-10 + 11) - (-12 + 11.5) = 1.5 (hit).
    # Pair 2: margin -20 - -18 = -2 (miss), but against the reference (-20 + 23) - 0 = 3 (hit):
    #         the policy raised the chosen response more than the reference had it.
    # Pair 3: a tie (target 0.5): no better response, counted in pairs only.
    # Pair 4: margin 1 (hit); implicit (-5 + 4) - (-6 + 6) = -1 (miss).
    figures = policy_figures(
        policy_chosen=[-10, -20, -1, -5],
        policy_rejected=[-12, -18, -2, -6],
        reference_chosen=[-11, -23, -1, -4],
        reference_rejected=[-11.5, -18, -2, -6],
        targets=[1.0, 0.8, 0.5, 1.0],
        beta=0.5,
    )
    assert figures["pairs"] == 4 and figures["decisive_pairs"] == 3
    assert figures["implicit_reward_accuracy"] == pytest.approx(2 / 3)
    assert figures["logprob_margin_accuracy"] == pytest.approx(2 / 3)
    assert figures["mean_logprob_margin"] == pytest.approx((2 - 2 + 1) / 3)
    assert figures["mean_implicit_reward_margin"] == pytest.approx(0.5 * (1.5 + 3 - 1) / 3)


def test_a_zero_margin_favours_the_rejected_response_and_a_low_target_flips_the_outcome() -> None:
    # As tasks.core.calibration.top_label counts p = 0.5: a zero margin favours the rejected
    # response. Pair 1 (chosen better) has zero margins: a miss both ways. Pair 2's target 0.2
    # says the rejected response is better: its margin -2 is a hit (and counts +2 in the mean),
    # and its zero implicit margin (policy = reference) a hit too.
    figures = policy_figures([-3, -4], [-3, -2], [-3, -4], [-3, -2], [1.0, 0.2], beta=1.0)
    assert figures["logprob_margin_accuracy"] == 0.5
    assert figures["implicit_reward_accuracy"] == 0.5
    assert figures["mean_logprob_margin"] == pytest.approx((0 + 2) / 2)
    assert figures["mean_implicit_reward_margin"] == 0.0


def _fake_policy(tmp_path: Path, settings: dict[str, Any], kind: str = "dpo") -> Path:
    checkpoint = tmp_path / kind
    lineage = {"kind": kind, "settings": settings, "base_model": "base-id"}
    write_lineage(checkpoint, lineage | {"model_path": "POLICY", "base_model_path": "BASE"})
    return checkpoint


def test_policy_accuracy_scores_with_the_checkpoint_and_its_base_and_reads_beta(
    monkeypatch, tmp_path
) -> None:
    records = [_record(f"question {i}", f"good {i}", f"bad {i}") for i in range(3)]
    # A fake log-prob function at the model boundary: the policy likes "good" texts, the base
    # likes them even more for question 0, so only the implicit reward misses there.
    table = {
        "POLICY": lambda text: -1.0 if text.startswith("good") else -3.0,
        "BASE": lambda text: (-0.5 if text == "good 0" else -2.0) if text.startswith("good") else -3.0,
    }
    calls = []

    def logprobs(model_path, pairs):
        calls.append((model_path, [p.chosen for p in pairs]))
        score = table[model_path]
        return [score(p.chosen) for p in pairs], [score(p.rejected) for p in pairs]

    monkeypatch.setattr(preference_eval, "_logprobs", logprobs)
    figures = preference_eval.policy_preference_accuracy(_fake_policy(tmp_path, {"beta": 0.25}), records)
    assert [path for path, _ in calls] == ["POLICY", "BASE"]
    assert figures["kind"] == "dpo" and figures["reference_model"] == "base-id" and figures["beta"] == 0.25
    assert figures["logprob_margin_accuracy"] == 1.0 and figures["mean_logprob_margin"] == 2.0
    # Question 0: (-1 + 0.5) - (-3 + 3) = -0.5, a miss; the others (-1 + 2) - 0 = 1.
    assert figures["implicit_reward_accuracy"] == pytest.approx(2 / 3)
    assert figures["mean_implicit_reward_margin"] == pytest.approx(0.25 * (-0.5 + 1 + 1) / 3)

    calls.clear()
    grpo = preference_eval.policy_preference_accuracy(
        _fake_policy(tmp_path, {"beta": 0.0}, "grpo"), records, 2
    )
    assert grpo["beta"] == preference_eval.DEFAULT_BETA  # no KL term: the default scale
    lowest = sorted(r["pair_id"] for r in records)[:2]
    assert calls[0][1] == [next(r["chosen"] for r in records if r["pair_id"] == p) for p in lowest]


def test_a_checkpoint_that_is_no_policy_is_refused(tmp_path: Path) -> None:
    write_lineage(tmp_path / "rm", {"kind": "reward", "settings": {}})
    with pytest.raises(CharterError, match="reward checkpoint, not a policy"):
        preference_eval.policy_preference_accuracy(tmp_path / "rm", [_record("q", "a", "b")])


# --- the judge ------------------------------------------------------------------------------


def test_judge_figures_on_worked_numbers() -> None:
    # (P(chosen better) with chosen shown first, with chosen shown second) per pair:
    # 1 right both ways; 2 picks whatever is shown first (orders disagree, mean 0.5 is a miss);
    # 3 and 4 wrong both ways (consistent).
    figures = judge_figures([0.9, 0.7, 0.2, 0.4], [0.8, 0.3, 0.1, 0.45])
    assert figures["accuracy_chosen_first"] == 0.5  # 0.9, 0.7
    assert figures["accuracy_chosen_second"] == 0.25  # 0.8
    assert figures["accuracy_both_orders"] == 0.25  # means 0.85, 0.5, 0.15, 0.425
    assert figures["position_consistency"] == 0.75  # all but pair 2
    # First shown picked: first order 0.9, 0.7; second order (rejected first) 0.3, 0.1, 0.45.
    assert figures["first_position_rate"] == 5 / 8


class ScriptedJudge:
    """A judge backend whose option log-probs come from a rule on the two texts it is shown."""

    name, model_id = "scripted", "scripted-judge"

    def __init__(self, prefers_first: bool) -> None:
        self.prefers_first = prefers_first

    def next_token_logprobs(self, conversations, candidates, assistant_prefix=""):
        answers = []
        for conversation in conversations:
            text = conversation[-1]["content"]
            first = text.split("(A) ", 1)[1].split("\n(B) ", 1)[0]
            first_better = self.prefers_first or first.startswith("good")
            answers.append(
                {"A": math.log(0.8 if first_better else 0.2), "B": math.log(0.2 if first_better else 0.8)}
            )
        return answers


def test_the_judge_is_scored_in_both_orders_whichever_response_sorts_first() -> None:
    records = [_record(f"Question {i}?", f"good answer {i}", f"bad answer {i}") for i in range(6)]
    # The pair's A is the response whose id sorts first: chosen is A in some pairs, B in others.
    assert len({response_id(r["chosen"]) < response_id(r["rejected"]) for r in records}) == 2
    records.append(_record("A tie?", "one", "two", target=0.5))  # no better response: not judged
    constitution = load_constitution(CONSTITUTION)

    fair = judge_preference_accuracy(ScriptedJudge(prefers_first=False), constitution, records)
    assert fair["pairs"] == 6
    assert (fair["accuracy_chosen_first"], fair["accuracy_chosen_second"]) == (1.0, 1.0)
    assert (fair["accuracy_both_orders"], fair["position_consistency"], fair["first_position_rate"]) == (
        1.0,
        1.0,
        0.5,
    )
    biased = judge_preference_accuracy(ScriptedJudge(prefers_first=True), constitution, records)
    assert (biased["accuracy_chosen_first"], biased["accuracy_chosen_second"]) == (1.0, 0.0)
    # Both orders average to exactly 0.5: a miss, and the two orders never agree.
    assert (biased["accuracy_both_orders"], biased["position_consistency"]) == (0.0, 0.0)
    assert biased["first_position_rate"] == 1.0


# --- a reward model's figures (the ensemble faked at its scoring) -----------------------------


class FixedEnsemble:
    """Two "members" whose mean P(chosen better) and spread are fixed per chosen text."""

    def __init__(self, figures: dict[str, tuple[float, float]]) -> None:
        self.members = [None, None]
        self.figures = figures

    def pair_probabilities(self, conversations, chosen, rejected, batch_size=16):
        return [self.figures[c][0] for c in chosen], [self.figures[c][1] for c in chosen]


@pytest.mark.integration  # imports torch / writes a store: over a unit test's 2 s
def test_reward_model_accuracy_ece_and_uncertainty_bins_on_worked_numbers(monkeypatch) -> None:
    import tasks.train.ensemble as ensemble

    figures = {"c1": (0.9, 0.01), "c2": (0.8, 0.02), "c3": (0.3, 0.3), "c4": (0.6, 0.05)}
    monkeypatch.setattr(ensemble, "load_ensemble", lambda path: (FixedEnsemble(figures), {}))
    records = [_record(f"q{i}", f"c{i}", f"r{i}") for i in range(1, 5)]
    result = preference_eval.reward_model_preference_metrics("rm", records)
    # Top-label confidences 0.9, 0.8, 0.7, 0.6; right, right, wrong, right: each its own bin, so
    # ECE = (|0.9 - 1| + |0.8 - 1| + |0.7 - 0| + |0.6 - 1|) / 4 = 1.4 / 4.
    assert result["accuracy"] == 0.75
    assert result["ece"] == pytest.approx(0.35)
    assert [(row["count"], row["accuracy"]) for row in result["reliability"]] == [
        (1, 1.0),
        (1, 0.0),
        (1, 1.0),
        (1, 1.0),
    ]
    # Four pairs, five bins: one per pair, by spread; the unsure one is the miss.
    assert [row["accuracy"] for row in result["uncertainty_bins"]] == [1.0, 1.0, 1.0, 0.0]
    assert result["members"] == 2 and result["mean_uncertainty"] == pytest.approx(0.38 / 4)


# --- inputs -------------------------------------------------------------------------------


def _write(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def test_each_format_is_told_by_its_keys_and_gives_the_stores_pair_ids(tmp_path: Path) -> None:
    record = _record("Can I book for Friday?", "Yes: 9am with Dr. Okafor.", "No.")
    messages = record["prompt"]
    charter = _write(tmp_path / "charter.jsonl", [{"messages": messages, "response_a": "No.",
        "response_b": record["chosen"], "choice": "b", "annotator": "ann"}])  # fmt: skip
    transcript = "\n\nHuman: Can I book for Friday?\n\nAssistant:"
    hh = _write(
        tmp_path / "hh.jsonl",
        [{"chosen": f"{transcript} {record['chosen']}", "rejected": f"{transcript} No."}],
    )
    trl = _write(
        tmp_path / "trl.jsonl", [{"prompt": transcript, "chosen": f" {record['chosen']}", "rejected": " No."}]
    )
    for path, fmt in ((charter, "charter"), (hh, "hh-rlhf"), (trl, "trl")):
        assert detect_format(path) == fmt
        [parsed], skipped = file_records(path)
        assert skipped == []
        assert (parsed["pair_id"], parsed["chosen"], parsed["rejected"], parsed["target"]) == (
            record["pair_id"],
            record["chosen"],
            "No.",
            1.0,
        )


def test_a_bad_line_fails_with_its_file_and_line_and_an_unknown_shape_asks_for_format(tmp_path: Path) -> None:
    good = {
        "chosen": "\n\nHuman: Hi\n\nAssistant: Hello.",
        "rejected": "\n\nHuman: Hi\n\nAssistant: Go away.",
    }
    bad_row = {"chosen": "no transcript here", "rejected": "x"}
    # A bad row among good ones is left out and reported with its line; with no good row, it fails.
    records, skipped = file_records(_write(tmp_path / "mixed.jsonl", [good, bad_row]))
    assert len(records) == 1
    assert skipped == [f"{tmp_path / 'mixed.jsonl'}:2 [chosen]: not an hh-rlhf transcript: text before "
        "the first '\\n\\nHuman:' turn"]  # fmt: skip
    bad = _write(tmp_path / "bad.jsonl", [bad_row])
    with pytest.raises(InputError) as caught:
        file_records(bad)
    assert str(caught.value).startswith(f"{bad}:1 [chosen]: not an hh-rlhf transcript")
    with pytest.raises(CharterError, match="give --format"):
        detect_format(_write(tmp_path / "odd.jsonl", [{"question": "?"}]))
    with pytest.raises(CharterError, match=r"missing\.jsonl: no such file"):
        held_out_pairs(str(tmp_path / "missing.jsonl"), tmp_path, PreferenceEvalSettings())
    with pytest.raises(ValueError, match="unknown label format"):
        PreferenceEvalSettings(label_format="xml")


def test_the_limit_keeps_the_lowest_pair_ids_whatever_the_order() -> None:
    records = [_record(f"q{i}", f"a{i}", f"b{i}") for i in range(8)]
    lowest = sorted(r["pair_id"] for r in records)[:3]
    assert [r["pair_id"] for r in limited(records, 3)] == lowest
    assert [r["pair_id"] for r in limited(records[::-1], 3)] == lowest
    assert [r["pair_id"] for r in limited(records, 5)][:3] == lowest  # a larger limit only adds


@pytest.mark.integration  # imports torch / writes a store: over a unit test's 2 s
def test_overlap_with_a_training_set_is_refused_with_its_count_unless_allowed(tmp_path: Path) -> None:
    from tests.train.preference_store import store_with_soft_set

    store, set_id = store_with_soft_set(tmp_path / "store")
    trained = held_out_pairs(set_id, store.root, PreferenceEvalSettings()).records
    outside = [_record("Unrelated?", "yes", "no")]
    dpo = {"kind": "dpo", "preference_set": set_id}
    with pytest.raises(
        CharterError, match=rf"^2 of the 3 held-out pairs are in the training preference set {set_id[:12]}"
    ):
        overlaps([*trained[:2], *outside], {"ckpt": dpo}, store.root, allow=False)
    [allowed] = overlaps([*trained[:2], *outside], {"ckpt": dpo}, store.root, allow=True)
    assert (allowed.set_id, allowed.overlapping) == (set_id, 2)
    assert overlaps(outside, {"ckpt": dpo}, store.root, allow=False)[0].overlapping == 0
    [sft] = overlaps(trained, {"sft": {"kind": "sft", "preference_set": None}}, store.root, allow=False)
    assert sft.set_id is None  # nothing to check against: reported, not refused
    with pytest.raises(CharterError, match="not readable"):
        overlaps(outside, {"ckpt": {**dpo, "preference_set": "f" * 64}}, store.root, allow=False)


# --- the real command ---------------------------------------------------------------------

# No Prefect: an unreachable API URL makes any flow fail, and none should run.
NO_PREFECT = {"PREFECT_API_URL": "http://127.0.0.1:9/api"}


def _figures(stdout: str, title: str) -> dict[str, float]:
    """The figure/value rows of the summary table whose title starts with ``title``."""
    section = stdout.split(title, 1)[1].split("┏", 2)[1]
    rows = re.findall(r"│ (.+?)\s+│ +(\S+) +│", section.split("└", 1)[0])
    return {name.strip(): float(value) for name, value in rows if value != "-"}


@pytest.fixture(scope="module")
def reward_store(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A store with a small preference set and a reward model trained on it by the real
    ``train reward`` checkpoint code, on a tiny random encoder saved as a backbone folder."""
    from tasks.train.checkpoints import train_reward_checkpoint
    from tasks.train.settings import RewardModelSettings
    from tests.train.preference_store import store_with_soft_set
    from tests.train.tiny_models import tiny_bert

    root = tmp_path_factory.mktemp("preference-eval")
    store, set_id = store_with_soft_set(root / "store")
    model, tokenizer = tiny_bert()
    model.save_pretrained(root / "tiny-bert")
    tokenizer.save_pretrained(root / "tiny-bert")
    config = RewardModelSettings(backbone=str(root / "tiny-bert"), max_length=64, eval_fraction=0.0)
    train_reward_checkpoint(store, "test-run", set_id, config, str(root / "rm"))
    return {"root": root, "store": store, "set_id": set_id, "rm": root / "rm"}


@pytest.mark.integration
@needs_hh
def test_eval_preferences_prints_the_reward_models_accuracy_and_ece(reward_store: dict) -> None:
    from tasks.train.ensemble import ensemble_metrics, load_ensemble

    report = reward_store["root"] / "figures.json"
    args = ("eval", "--preferences", str(HH), "--reward-model", str(reward_store["rm"]), "--limit", "24")
    result = run_charter(
        *args, "--store", str(reward_store["store"].root), "--json", str(report), env=NO_PREFECT
    )
    assert result.returncode == 0, result.stdout + result.stderr
    usable, skipped = file_records(HH)
    assert f"24 of {len(usable)} records (the 24 with the lowest pair ids)" in result.stdout
    assert (
        f"{len(skipped)} rows are no usable pair and were left out, the first: {skipped[0]}" in result.stdout
    )
    records = limited(usable, 24)
    expected = ensemble_metrics(load_ensemble(reward_store["rm"])[0], records)
    printed = _figures(result.stdout, "reward model")
    assert printed["pairs"] == expected["decisive_pairs"] == 24
    assert printed["accuracy"] == round(expected["accuracy"], 4)
    assert printed["ECE"] == round(expected["ece"], 4)
    written = json.loads(report.read_text(encoding="utf-8"))
    assert written["reward_model"]["accuracy"] == pytest.approx(expected["accuracy"])
    assert written["reward_model"]["ece"] == pytest.approx(expected["ece"])
    assert written["overlap"] == [
        {"checkpoint": str(reward_store["rm"]), "set_id": reward_store["set_id"], "overlapping": 0}
    ]


@pytest.mark.integration
def test_eval_refuses_the_reward_models_own_training_pairs_unless_allowed(reward_store: dict) -> None:
    set_id, rm, store = reward_store["set_id"], str(reward_store["rm"]), str(reward_store["store"].root)
    rows = held_out_pairs(set_id, store, PreferenceEvalSettings()).records
    # The training pairs as a TRL file: the same pairs, so the same pair ids, from another source.
    own = _write(
        reward_store["root"] / "own.jsonl",
        [{"prompt": r["prompt"], "chosen": [{"role": "assistant", "content": r["chosen"]}],
          "rejected": [{"role": "assistant", "content": r["rejected"]}]} for r in rows],
    )  # fmt: skip
    refused = run_charter(
        "eval", "--preferences", str(own), "--reward-model", rm, "--store", store, env=NO_PREFECT
    )
    assert refused.returncode == 1
    assert (
        f"{len(rows)} of the {len(rows)} held-out pairs are in the training preference set" in refused.stderr
    )
    assert "reward model" not in refused.stdout  # refused before anything was measured
    allowed = run_charter(
        "eval",
        "--preferences",
        str(own),
        "--reward-model",
        rm,
        "--allow-overlap",
        "--store",
        store,
        env=NO_PREFECT,
    )
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert f"{len(rows)} pairs overlap the training set {set_id[:12]}" in allowed.stdout
    assert _figures(allowed.stdout, "reward model")["pairs"] == len(rows)


@pytest.mark.integration
def test_eval_preferences_prints_a_policys_implicit_reward_accuracy(
    tmp_path: Path, embedded_model, two_layer_model
) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    # Small stand-ins that load in moments: SmolLM2's first 2 layers as the "policy", its first
    # layer as the "base" its lineage names (the reference of the implicit reward).
    reference = tmp_path / "one-layer"
    AutoModelForCausalLM.from_pretrained(
        embedded_model.path, num_hidden_layers=1, dtype=torch.float32
    ).save_pretrained(reference)
    AutoTokenizer.from_pretrained(embedded_model.path).save_pretrained(reference)
    checkpoint = tmp_path / "dpo"
    lineage = {"kind": "dpo", "preference_set": None, "settings": {"beta": 0.2}, "base_model": "one-layer"}
    write_lineage(checkpoint, lineage | {"base_model_path": str(reference), "model_path": two_layer_model})
    answers = [("Can I book a physical on Friday?", "Yes, Friday at 9am works.", "No."),
               ("Is parking free?", "Parking is free for patients.", "Ask someone."),
               ("Do you open on Sunday?", "We are closed on Sundays.", "Maybe.")]  # fmt: skip
    held_out = _write(
        tmp_path / "held-out.jsonl",
        [{"prompt": q, "response_a": good, "response_b": bad, "choice": "a", "annotator": "ann"}
         for q, good, bad in answers],
    )  # fmt: skip
    result = run_charter("eval", "--preferences", str(held_out), "--policy", str(checkpoint), env=NO_PREFECT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no training preference set to check overlap against" in result.stdout
    assert "AI judge not measured: give --constitution" in result.stdout
    expected = preference_eval.policy_preference_accuracy(checkpoint, file_records(held_out)[0])
    printed = _figures(result.stdout, "dpo policy")
    assert (printed["beta"], printed["pairs"]) == (0.2, 3)
    for name, key in (
        ("implicit reward accuracy", "implicit_reward_accuracy"),
        ("log-prob margin accuracy", "logprob_margin_accuracy"),
        ("mean log-prob margin", "mean_logprob_margin"),
        ("mean implicit reward margin", "mean_implicit_reward_margin"),
    ):
        assert printed[name] == round(expected[key], 4), name
