"""The reward model: Bradley-Terry loss on worked numbers, calibration tables, the held-out split,
the training loop on a tiny random encoder, and MiniLM trained on real hh-rlhf pairs."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from tasks.core.calibration import expected_calibration_error, reliability_table, top_label
from tasks.core.errors import CharterError
from tasks.ingest.human_labels import parse_label_file
from tasks.train.ensemble import load_scorer
from tasks.train.reward_model import (
    METADATA_FILE,
    bt_loss,
    format_text,
    held_out_metrics,
    load_backbone,
    load_reward_model,
    save_reward_model,
    score_texts,
    split_records,
    train_reward_model,
)
from tasks.train.settings import RewardModelSettings


def _loss(margins: list[float], targets: list[float], weights: list[float] | None = None) -> float:
    """bt_loss with the rejected scores at 0, so each chosen score is the margin d."""
    return bt_loss(
        torch.tensor(margins),
        torch.zeros(len(margins)),
        torch.tensor(targets),
        torch.tensor(weights or [1.0] * len(margins)),
    ).item()


# --- bt_loss ------------------------------------------------------------------------------


def test_zero_margin_costs_log_2_whatever_the_target() -> None:
    # sigmoid(0) = 1/2: -(t log 1/2 + (1 - t) log 1/2) = log 2 ~ 0.6931 for every t.
    for target in (0.0, 0.2, 0.5, 1.0):
        assert _loss([0.0], [target]) == pytest.approx(math.log(2), abs=1e-6)


def test_hard_target_is_trls_loss() -> None:
    # d = ln 3: sigmoid(d) = 3 / (3 + 1) = 0.75, so the loss is -ln 0.75 ~ 0.2877 ...
    d = math.log(3)
    assert _loss([d], [1.0]) == pytest.approx(-math.log(0.75), abs=1e-6)
    # ... which is TRL RewardTrainer's -logsigmoid(d).
    assert _loss([d], [1.0]) == pytest.approx(-torch.nn.functional.logsigmoid(torch.tensor(d)).item())


def test_soft_target_mixes_both_directions() -> None:
    # t = 0.5 at d = ln 3: 0.5 * (-ln 0.75) + 0.5 * (-ln 0.25) = 0.5 * 0.2877 + 0.5 * 1.3863 ~ 0.8370.
    expected = 0.5 * -math.log(0.75) + 0.5 * -math.log(0.25)
    assert _loss([math.log(3)], [0.5]) == pytest.approx(expected, abs=1e-6)


def test_weights_are_normalised_by_their_sum() -> None:
    a, b = _loss([1.0], [1.0]), _loss([-2.0], [0.7])
    # A zero-weight pair changes nothing: (1 * a + 0 * b) / 1 = a.
    assert _loss([1.0, -2.0], [1.0, 0.7], [1.0, 0.0]) == pytest.approx(a)
    # Doubling the first pair's weight: (2a + b) / 3, the same as listing that pair twice.
    doubled = _loss([1.0, -2.0], [1.0, 0.7], [2.0, 1.0])
    assert doubled == pytest.approx((2 * a + b) / 3)
    assert doubled == pytest.approx(_loss([1.0, 1.0, -2.0], [1.0, 1.0, 0.7]))
    # Scaling every weight alike changes nothing.
    assert _loss([1.0, -2.0], [1.0, 0.7], [5.0, 5.0]) == pytest.approx((a + b) / 2)


def test_soft_target_is_learned_as_a_finite_margin() -> None:
    # dL/dd = sigmoid(d) - t. With t = 0.2 at d = 0.5: 0.6225 - 0.2 = 0.4225 > 0, so gradient
    # descent lowers d ...
    margin = torch.tensor([0.5], requires_grad=True)
    bt_loss(margin, torch.zeros(1), torch.tensor([0.2]), torch.ones(1)).backward()
    assert margin.grad.item() == pytest.approx(1 / (1 + math.exp(-0.5)) - 0.2, abs=1e-6)
    assert _loss([0.4], [0.2]) < _loss([0.5], [0.2])
    # ... down to d = logit(0.2) = ln(0.2 / 0.8) ~ -1.386, where the gradient vanishes and the loss
    # is the target's entropy, -(0.2 ln 0.2 + 0.8 ln 0.8) ~ 0.5004; past it the loss rises again.
    optimum = math.log(0.2 / 0.8)
    at_optimum = torch.tensor([optimum], requires_grad=True)
    bt_loss(at_optimum, torch.zeros(1), torch.tensor([0.2]), torch.ones(1)).backward()
    assert at_optimum.grad.item() == pytest.approx(0.0, abs=1e-6)
    entropy = -(0.2 * math.log(0.2) + 0.8 * math.log(0.8))
    assert _loss([optimum], [0.2]) == pytest.approx(entropy, abs=1e-6)
    assert _loss([optimum - 0.5], [0.2]) > entropy


def test_large_margins_stay_finite() -> None:
    # log(sigmoid(-100)) underflows to log(0) = -inf in float32; logsigmoid gives -100.
    assert _loss([-100.0], [1.0]) == pytest.approx(100.0)
    assert _loss([100.0], [0.0]) == pytest.approx(100.0)


def test_bt_loss_rejects_bad_inputs() -> None:
    with pytest.raises(ValueError, match="sum to zero"):
        _loss([1.0], [1.0], [0.0])
    with pytest.raises(ValueError, match="equally long"):
        bt_loss(torch.zeros(2), torch.zeros(3), torch.ones(2), torch.ones(2))


# --- calibration --------------------------------------------------------------------------


def test_reliability_table_and_ece_worked_example() -> None:
    probabilities = [0.05, 0.15, 0.72, 0.78, 0.75, 0.95, 1.0]
    outcomes = [False, False, True, False, True, True, True]
    # Bins of width 0.1, 1.0 in the last: bin 0 {0.05}, bin 1 {0.15}, bin 7 {0.72, 0.78, 0.75}
    # (mean 0.75, 2 of 3 happened), bin 9 {0.95, 1.0} (mean 0.975, both happened).
    table = reliability_table(probabilities, outcomes)
    assert [(row["bin"], row["count"]) for row in table] == [(0, 1), (1, 1), (7, 3), (9, 2)]
    assert [row["mean_confidence"] for row in table] == pytest.approx([0.05, 0.15, 0.75, 0.975])
    assert [row["accuracy"] for row in table] == pytest.approx([0.0, 0.0, 2 / 3, 1.0])
    # ECE = (1 * 0.05 + 1 * 0.15 + 3 * |0.75 - 2/3| + 2 * 0.025) / 7 = (0.05 + 0.15 + 0.25 + 0.05) / 7.
    assert expected_calibration_error(probabilities, outcomes) == pytest.approx(0.5 / 7)
    # Two bins: [0, 0.5) holds 0.05 and 0.15, [0.5, 1] the rest (mean 0.84, 4 of 5 happened).
    assert expected_calibration_error(probabilities, outcomes, bins=2) == pytest.approx(
        (2 * 0.1 + 5 * abs(0.84 - 0.8)) / 7
    )


def test_top_label_calibration_of_preferences() -> None:
    # Confidence in the side the model favours, and whether that side is the better one.
    confidences, correct = top_label([0.8, 0.3, 0.5], [True, True, False])
    assert confidences == pytest.approx([0.8, 0.7, 0.5])
    assert correct == [True, False, True]
    # A model that gives 0.7 to the chosen response of 7 pairs and 0.3 to that of 3 (the chosen
    # response is always the better one in a preference set) is right 70% of the time at 70%
    # confidence: calibrated. Binning P(chosen better) against the all-1 outcomes instead would
    # report an error of 0.42 (every bin's accuracy is 1).
    p_chosen, outcomes = [0.7] * 7 + [0.3] * 3, [True] * 10
    assert expected_calibration_error(*top_label(p_chosen, outcomes)) == pytest.approx(0.0)
    assert expected_calibration_error(p_chosen, outcomes) == pytest.approx(0.42)


def test_calibration_rejects_bad_inputs() -> None:
    with pytest.raises(ValueError, match="outcomes"):
        reliability_table([0.5], [True, False])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        reliability_table([1.5], [True])
    with pytest.raises(ValueError, match="no predictions"):
        expected_calibration_error([], [])


# --- records and the held-out split -------------------------------------------------------


def _record(index: int, **overrides: Any) -> dict[str, Any]:
    return {
        "prompt": [{"role": "user", "content": f"question {index}"}],
        "chosen": f"a careful answer {index}",
        "rejected": f"a careless answer {index}",
        "target": 1.0,
        "weight": 1.0,
        **overrides,
    }


def test_split_is_deterministic_and_independent_of_order() -> None:
    records = [_record(i, pair_id=f"pair-{i}") for i in range(200)]
    train, held_out = split_records(records, 0.2, seed=0)
    assert len(train) + len(held_out) == 200
    assert 20 <= len(held_out) <= 60
    held_ids = {r["pair_id"] for r in held_out}
    again = split_records(list(reversed(records)), 0.2, seed=0)[1]
    assert {r["pair_id"] for r in again} == held_ids
    # A pair's side depends on itself only: a subset splits the same way.
    assert {r["pair_id"] for r in split_records(records[:50], 0.2, seed=0)[1]} == {
        r["pair_id"] for r in records[:50] if r["pair_id"] in held_ids
    }
    assert {r["pair_id"] for r in split_records(records, 0.2, seed=1)[1]} != held_ids
    assert split_records(records, 0.0, seed=0) == (records, [])


def test_split_without_pair_ids_hashes_the_texts() -> None:
    records = [_record(i) for i in range(100)]
    held = {r["chosen"] for r in split_records(records, 0.3, seed=0)[1]}
    assert held
    # The same pair with the responses swapped, or the prompt as JSON text, lands on the same side.
    swapped = [
        {**r, "chosen": r["rejected"], "rejected": r["chosen"], "prompt": json.dumps(r["prompt"])}
        for r in records
    ]
    assert {r["rejected"] for r in split_records(swapped, 0.3, seed=0)[1]} == held


def test_bad_records_are_named() -> None:
    with pytest.raises(CharterError, match=r"(?s)record 1.*target"):
        split_records([_record(0), _record(1, target=1.5)], 0.2, seed=0)
    with pytest.raises(CharterError, match=r"(?s)record 0.*end with a user message"):
        split_records([_record(0, prompt=[{"role": "assistant", "content": "hi"}])], 0.2, seed=0)


def test_text_format_ends_with_the_response() -> None:
    messages = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": "Book me in"},
    ]
    assert (
        format_text(messages, "Done.")
        == "Human: Hi\n\nAssistant: Hello\n\nHuman: Book me in\n\nAssistant: Done."
    )


# --- training loop on a tiny random encoder (no pretrained weights) -----------------------


def test_training_loop_holds_out_skips_zero_weights_and_logs_steps(tiny_backbone: str) -> None:
    records = [_record(i, pair_id=f"pair-{i}", weight=0.0 if i % 5 == 0 else 1.0) for i in range(40)]
    config = RewardModelSettings(backbone=tiny_backbone, batch_size=8, epochs=2, max_length=32)
    seen: list[dict[str, Any]] = []
    history = train_reward_model(records, config, on_step=seen.append)[2]
    train, held_out = split_records(records, config.eval_fraction, config.seed)
    trained = [r for r in train if r["weight"] > 0]
    assert (history.train_pairs, history.eval_pairs) == (len(trained), len(held_out))
    assert seen == history.steps
    assert sum(step["pairs"] for step in history.steps) == 2 * len(trained)
    assert [step["step"] for step in history.steps] == list(range(1, len(history.steps) + 1))
    assert [e["epoch"] for e in history.evaluations] == [0, 1, 2]
    assert history.pairs_per_second > 0
    # The same seed trains the same model.
    again = train_reward_model(records, config)[2]
    assert [s["loss"] for s in again.steps] == pytest.approx([s["loss"] for s in history.steps])


def test_evaluate_groups_and_ties(tiny_backbone: str) -> None:
    config = RewardModelSettings(backbone=tiny_backbone, max_length=32, batch_size=2)
    torch.manual_seed(0)
    model, tokenizer = load_backbone(config)
    records = [
        _record(1, family="booking", decided_by="human"),
        _record(2, family="booking", decided_by="ai", target=0.8),
        _record(3),
        _record(4, family="booking", target=0.5),  # a tie: in the loss only
        _record(5, family="urgent", decided_by="rule", weight=0.0),
    ]
    metrics = held_out_metrics(model, tokenizer, records, config)
    assert (metrics["pairs"], metrics["decisive_pairs"]) == (5, 4)
    assert {k: v["pairs"] for k, v in metrics["accuracy_by_family"].items()} == {
        "(none)": 1,
        "booking": 2,
        "urgent": 1,
    }
    assert {k: v["pairs"] for k, v in metrics["accuracy_by_decided_by"].items()} == {
        "(none)": 1,
        "ai": 1,
        "human": 1,
        "rule": 1,
    }
    # Each prediction agrees with the hard outcome (every decisive target here is > 0.5) iff
    # P(chosen better) > 0.5.
    scores = score_texts(
        model,
        tokenizer,
        [r["prompt"] for r in records] * 2,
        [r["chosen"] for r in records] + [r["rejected"] for r in records],
        config.max_length,
        batch_size=3,
    )
    hits = [scores[i] > scores[i + 5] for i in (0, 1, 2, 4)]
    assert metrics["accuracy"] == pytest.approx(sum(hits) / 4)
    assert sum(row["count"] for row in metrics["reliability"]) == 4
    # The loss weighs the tie and ignores the zero-weight pair.
    chosen, rejected = torch.tensor(scores[:5]), torch.tensor(scores[5:])
    targets, weights = torch.tensor([1.0, 0.8, 1.0, 0.5, 1.0]), torch.tensor([1.0, 1.0, 1.0, 1.0, 0.0])
    assert metrics["loss"] == pytest.approx(bt_loss(chosen, rejected, targets, weights).item(), abs=1e-5)
    # Batching sorts by length but returns scores in input order.
    one_by_one = score_texts(
        model, tokenizer, [r["prompt"] for r in records], [r["chosen"] for r in records], 32, batch_size=1
    )
    assert one_by_one == pytest.approx(scores[:5], abs=1e-5)


def test_save_refuses_a_foreign_folder(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(CharterError, match="not overwriting"):
        save_reward_model(None, None, tmp_path, {})
    with pytest.raises(CharterError, match="no charter reward model"):
        load_reward_model(tmp_path)


# --- integration: MiniLM on real hh-rlhf pairs --------------------------------------------


def hh_records(path: Path) -> list[dict[str, Any]]:
    """hh-rlhf pairs as preference records: the human's choice is chosen, with target 1."""
    parsed = parse_label_file(path, "hh-rlhf")
    prompts = {p.prompt_id: p for p in parsed.prompts}
    records = []
    for label in parsed.labels:
        a_chosen = label["choice"] == "a"
        records.append(
            {
                "pair_id": label["pair_id"],
                "prompt": list(prompts[label["prompt_id"]].messages),
                "chosen": label["response_a"] if a_chosen else label["response_b"],
                "rejected": label["response_b"] if a_chosen else label["response_a"],
                "target": 1.0,
                "weight": 1.0,
                "family": prompts[label["prompt_id"]].family,
                "decided_by": "human",
            }
        )
    return records


@pytest.mark.integration
def test_minilm_learns_from_hh_rlhf_and_round_trips(hh_rlhf_sample: Path, tmp_path: Path) -> None:
    records = hh_records(hh_rlhf_sample)
    train = records[:240]
    train_ids = {r["pair_id"] for r in train}
    held_out = [r for r in records[240:360] if r["pair_id"] not in train_ids]
    # 64 tokens from the end (the response and a little context) and a higher learning rate keep
    # this to one epoch of 15 steps on 2 cores.
    config = RewardModelSettings(max_length=64, learning_rate=2e-4)
    model, tokenizer, history = train_reward_model(train, config, eval_records=held_out)

    before, after = history.evaluations[0], history.evaluations[-1]
    assert after["loss"] < before["loss"], (before["loss"], after["loss"])

    saved = save_reward_model(
        model, tokenizer, tmp_path / "rm", {"config": config.model_dump(), "metrics": after}
    )
    loaded, loaded_tokenizer, metadata = load_reward_model(saved)
    assert metadata["config"] == config.model_dump(mode="json")  # as JSON holds it (tuples as lists)
    assert json.loads((saved / METADATA_FILE).read_text())["metrics"]["loss"] == after["loss"]
    sample = held_out[:8]
    args = ([r["prompt"] for r in sample], [r["chosen"] for r in sample], config.max_length, 8)
    assert score_texts(loaded, loaded_tokenizer, *args) == pytest.approx(
        score_texts(model, tokenizer, *args), abs=1e-5
    )
    # The reward function PPO and the scoreboard use: the saved model at its own max_length.
    assert load_scorer(saved)(args[0], args[1]) == pytest.approx(
        score_texts(model, tokenizer, *args), abs=1e-5
    )
