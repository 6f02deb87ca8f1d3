"""DPO with soft targets and per-row weights: the loss with worked numbers, the settings that allow
it, and training runs on the two-layer SmolLM2 that check the trainer computes exactly that loss."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from tasks.core.errors import CharterError
from tasks.train.dpo import dpo_trainer, training_rows
from tasks.train.dpo_loss import smoothed_targets, soft_dpo_loss
from tasks.train.settings import DPOSettings
from tests.train.test_ppo import load_two_layers, one_thread  # noqa: F401 (autouse: one torch thread)


def softplus(x: float) -> float:
    """-log sigmoid(-x) = log(1 + e^x), by hand."""
    return math.log1p(math.exp(x))


def test_p_1_weight_1_is_trls_sigmoid_loss_the_plain_mean_of_minus_logsigmoid() -> None:
    x = torch.tensor([0.5, -1.0, 2.0])  # beta * delta
    loss = soft_dpo_loss(x, torch.ones(3), torch.ones(3), 3.0)
    # -log sigmoid(x) = log(1 + e^-x): 0.474077, 1.313262, 0.126928; their mean 0.638089.
    assert softplus(-0.5) == pytest.approx(0.474077, abs=1e-6)
    assert softplus(1.0) == pytest.approx(1.313262, abs=1e-6)
    assert softplus(-2.0) == pytest.approx(0.126928, abs=1e-6)
    assert loss.item() == pytest.approx(0.638089, abs=1e-6)
    assert loss.item() == pytest.approx((-torch.nn.functional.logsigmoid(x)).mean().item(), abs=1e-7)


def test_a_coin_flip_target_gives_no_gradient_where_training_starts_and_pulls_towards_it_after() -> None:
    # At delta = 0 (the policy is its reference) a p = 0.5 row pushes neither way ...
    x = torch.zeros(1, requires_grad=True)
    soft_dpo_loss(x, torch.tensor([0.5]), torch.ones(1), 1.0).backward()
    assert x.grad.item() == 0.0
    # ... and elsewhere its gradient is sigmoid(x) - p: back towards delta = 0, not apart.
    for start, expected in ((2.0, 0.880797 - 0.5), (-2.0, 0.119203 - 0.5)):
        x = torch.tensor([start], requires_grad=True)
        soft_dpo_loss(x, torch.tensor([0.5]), torch.ones(1), 1.0).backward()
        assert x.grad.item() == pytest.approx(expected, abs=1e-6)
    # A p = 1 row at delta = 0 is pushed up: gradient sigmoid(0) - 1 = -0.5.
    x = torch.zeros(1, requires_grad=True)
    soft_dpo_loss(x, torch.ones(1), torch.ones(1), 1.0).backward()
    assert x.grad.item() == -0.5


def test_a_weight_0_row_leaves_loss_and_gradient_as_without_it() -> None:
    x = torch.tensor([0.5, 3.0, -1.0], requires_grad=True)
    targets, weights = torch.tensor([1.0, 0.3, 0.8]), torch.tensor([1.0, 0.0, 2.0])
    loss = soft_dpo_loss(x, targets, weights, weights.sum())
    loss.backward()
    # Row 3: -(0.8 * log sigmoid(-1) + 0.2 * log sigmoid(1)) = 0.8 * 1.313262 + 0.2 * 0.313262 = 1.113262;
    # with row 1's 0.474077: (1 * 0.474077 + 2 * 1.113262) / 3 = 0.900200.
    assert loss.item() == pytest.approx(0.900200, abs=1e-6)
    kept = torch.tensor([0.5, -1.0], requires_grad=True)
    without = soft_dpo_loss(kept, torch.tensor([1.0, 0.8]), torch.tensor([1.0, 2.0]), 3.0)
    without.backward()
    assert loss.item() == without.item()
    assert x.grad[1].item() == 0.0
    assert torch.equal(x.grad[[0, 2]], kept.grad)


def test_the_step_total_spreads_one_weighted_mean_over_accumulated_batches() -> None:
    x, targets, weights = torch.tensor([0.5, -1.0]), torch.tensor([1.0, 0.8]), torch.tensor([1.0, 2.0])
    halves = sum(soft_dpo_loss(x[i : i + 1], targets[i : i + 1], weights[i : i + 1], 3.0) for i in (0, 1))
    assert halves.item() == pytest.approx(soft_dpo_loss(x, targets, weights, 3.0).item(), abs=1e-7)
    with pytest.raises(ValueError, match="sum to zero"):
        soft_dpo_loss(x, targets, torch.zeros(2), 0.0)
    with pytest.raises(ValueError, match="1-D and equally long"):
        soft_dpo_loss(x, targets[:1], weights, 3.0)


def test_label_smoothing_folds_into_the_target_and_gives_conservative_dpo() -> None:
    eps = 0.1
    p = smoothed_targets(torch.tensor([1.0, 0.0, 0.5, 0.7]), eps)
    assert p.tolist() == pytest.approx([0.9, 0.1, 0.5, 0.66])  # eps + p * (1 - 2 * eps)
    # Hard target + eps: -(1 - eps) log sigmoid(x) - eps log sigmoid(-x), cDPO; at x = 0.5:
    # 0.9 * 0.474077 + 0.1 * 0.974077 = 0.524077.
    loss = soft_dpo_loss(torch.tensor([0.5]), p[:1], torch.ones(1), 1.0)
    assert loss.item() == pytest.approx(0.9 * softplus(-0.5) + 0.1 * softplus(0.5), abs=1e-7)
    assert loss.item() == pytest.approx(0.524077, abs=1e-6)


def test_soft_targets_and_weights_are_refused_with_other_losses_naming_the_fix() -> None:
    with pytest.raises(
        ValueError, match=r"set targets: hard and weights: false \(--targets hard --no-weights\)"
    ):
        DPOSettings(loss_type="ipo")
    with pytest.raises(ValueError, match="loss_type hinge"):
        DPOSettings(loss_type="hinge", targets="hard")
    assert DPOSettings(loss_type="ipo", targets="hard", weights=False).loss_type == "ipo"
    assert DPOSettings().targets == "soft" and DPOSettings().weights is True


def row(question: str, chosen: str, rejected: str, target: float, weight: float) -> dict:
    return {
        "prompt": json.dumps([{"role": "user", "content": question}]),
        "chosen": chosen,
        "rejected": rejected,
        "target": target,
        "weight": weight,
    }


BOOK = row("Book me in on Friday.", "Booked: Friday at 9.", "No.", 0.9, 1.0)
CANCEL = row("Cancel my visit, please.", "Cancelled; call us to rebook.", "Whatever.", 0.7, 2.0)
UNWEIGHTED = row("Can I move my slot?", "Moved to Monday at 10.", "Can't.", 1.0, 0.0)


def test_training_rows_leave_out_weight_0_rows_only_when_weights_count() -> None:
    rows = [BOOK, UNWEIGHTED, CANCEL]
    assert training_rows(rows, DPOSettings()) == [BOOK, CANCEL]
    assert training_rows(rows, DPOSettings(weights=False)) == rows
    with pytest.raises(CharterError, match=r"has weight 0 \(--no-weights counts each row as weight 1\)"):
        training_rows([UNWEIGHTED], DPOSettings())


def trained(model_path: str, rows: list[dict], settings: DPOSettings, out: Path) -> tuple[dict, list[dict]]:
    """Train a fresh two-layer SmolLM2 on exactly ``rows``: its trainable parameters and TRL's log."""
    from transformers import AutoTokenizer

    trainer = dpo_trainer(
        load_two_layers(model_path), AutoTokenizer.from_pretrained(model_path), rows, settings, out
    )
    trainer.train()
    params = {name: p.detach().clone() for name, p in trainer.model.named_parameters() if p.requires_grad}
    return params, [entry for entry in trainer.state.log_history if "loss" in entry]


@pytest.mark.integration
def test_a_weight_0_row_leaves_the_trained_model_exactly_as_without_it(
    embedded_model, tmp_path: Path
) -> None:
    """Batching that makes the comparison fair: one row per batch, and every optimiser step
    accumulates one batch per row (3 with the weight-0 row, 2 without), so each step sees every
    row in both runs, each row's forward pass has the same shape in both, and the step's total
    weight (3) is the same. The shuffle orders the rows differently in the two runs, but two
    non-zero gradients add up the same in either order, and the weight-0 row adds exact zeros."""
    settings = DPOSettings(steps=2, batch_size=1, learning_rate=1e-3, max_length=64)
    accumulate = {n: settings.model_copy(update={"gradient_accumulation_steps": n}) for n in (2, 3)}
    with_zero, log = trained(embedded_model.path, [BOOK, UNWEIGHTED, CANCEL], accumulate[3], tmp_path / "a")
    without, _ = trained(embedded_model.path, [BOOK, CANCEL], accumulate[2], tmp_path / "b")
    assert len(log) == 2 and len(with_zero) == 16  # 4 LoRA pairs (q, k, v, o) in each of 2 layers
    assert all(torch.equal(with_zero[name], without[name]) for name in with_zero)
    # The same run with that row weighing 1 ends elsewhere: the comparison could fail.
    weighted = {**UNWEIGHTED, "weight": 1.0}
    other, _ = trained(embedded_model.path, [BOOK, weighted, CANCEL], accumulate[3], tmp_path / "c")
    assert not all(torch.equal(other[name], without[name]) for name in other)


@pytest.mark.integration
def test_the_trainer_minimises_the_soft_loss_of_trls_own_margins(embedded_model, tmp_path: Path) -> None:
    """TRL logs each step's mean beta * delta (``rewards/margins``) from the batch the loss is
    computed on; with one row per step, that is the row's x, so the logged loss must be the soft
    loss of it: TRL's sigmoid loss log(1 + e^-x) for hard targets, and with p' = 0.1 + 0.8 * 0.6 =
    0.58 (target 0.6, label_smoothing 0.1) p' log(1 + e^-x) + (1 - p') log(1 + e^x)."""
    rows = [{**r, "target": 0.6} for r in (BOOK, CANCEL)]
    base = DPOSettings(steps=4, batch_size=1, learning_rate=2e-3, max_length=64, weights=False)
    hard = base.model_copy(update={"targets": "hard"})
    smoothed = base.model_copy(update={"label_smoothing": 0.1})
    for settings, p in ((hard, 1.0), (smoothed, 0.58)):
        _, log = trained(embedded_model.path, rows, settings, tmp_path / settings.targets)
        margins = [entry["rewards/margins"] for entry in log]
        assert margins[0] == 0.0 and all(m != 0.0 for m in margins[1:])  # the policy moved
        expected = [p * softplus(-m) + (1 - p) * softplus(m) for m in margins]
        assert [entry["loss"] for entry in log] == pytest.approx(expected, abs=1e-5)
