"""DPO that honours a preference set's soft targets and per-row weights.

The merge gives each pair a target p = P(chosen is better) and a weight. With x = beta * delta
(delta: the policy's log-ratio to the reference, chosen minus rejected), a row's loss is the
expected sigmoid loss under its target, scaled by its weight:

    loss_i = -w_i * [p'_i * log sigmoid(x_i) + (1 - p'_i) * log sigmoid(-x_i)],
    p' = eps + p * (1 - 2 * eps)   (eps: ``label_smoothing``)

With p = 1 it is TRL's sigmoid loss, -log sigmoid(x); with p = 1 and eps > 0 it is conservative
DPO (cDPO, TRL's sigmoid loss before 1.0; TRL 1.16's sigmoid ignores ``label_smoothing``). Its
gradient in x is w * (sigmoid(x) - p'), so a coin-flip row (p' = 0.5) pulls x towards 0 rather than
pushing the pair apart, and the loss is smallest at the finite margin x = logit(p').

Normalisation: the weighted losses are summed and divided by the sum of the weights of all rows
in the optimiser step (every gradient-accumulation batch of it), so a weight-0 row changes
neither the loss nor the gradient, and with every weight 1 the loss is the plain mean over the
step's rows, which is TRL's.

``SoftDPOTrainer`` is TRL's ``DPOTrainer`` with that loss; everything else (data preparation,
reference model, TRL's logged metrics) stays TRL's. Imports torch and TRL: import it lazily.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
import trl.trainer.dpo_trainer as trl_dpo
from trl import DPOTrainer

from tasks.core.errors import CharterError

# The per-row columns the trainer carries from the dataset to the loss.
ROW_COLUMNS = ("target", "weight")


def smoothed_targets(targets: torch.Tensor, label_smoothing: float) -> torch.Tensor:
    """p' = eps + p * (1 - 2 * eps): a label flipped with probability eps, folded into the target."""
    return label_smoothing + targets * (1 - 2 * label_smoothing)


def soft_dpo_loss(
    logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor, total_weight: torch.Tensor | float
) -> torch.Tensor:
    """sum_i w_i * -(p_i * logsigmoid(x_i) + (1 - p_i) * logsigmoid(-x_i)), divided by ``total_weight``.

    ``logits`` are x = beta * delta, ``targets`` the (smoothed) p; ``total_weight`` is the sum of the
    weights of the whole optimiser step, of which these rows may be one batch.
    """
    if not logits.shape == targets.shape == weights.shape or logits.dim() != 1:
        raise ValueError("logits, targets and weights must be 1-D and equally long")
    if float(total_weight) <= 0:
        raise ValueError("the rows' weights sum to zero: nothing to learn from")
    per_row = -(targets * F.logsigmoid(logits) + (1 - targets) * F.logsigmoid(-logits))
    return (weights * per_row).sum() / total_weight


class _LogitRecorder:
    """``torch.nn.functional`` as TRL's DPO module sees it, recording what ``logsigmoid`` is given.

    TRL 1.16 computes the sigmoid loss inline in ``DPOTrainer._compute_loss``, as
    ``-F.logsigmoid(self.beta * delta_score)``, and exposes no per-row handle on it; its argument,
    with its graph, is exactly the x this module's loss needs, with TRL's own log-prob sums,
    reference handling and f-divergence."""

    def __init__(self) -> None:
        self.calls: list[torch.Tensor] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(F, name)

    def logsigmoid(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append(x)
        return F.logsigmoid(x)


@contextmanager
def _recording_logits() -> Iterator[_LogitRecorder]:
    recorder = _LogitRecorder()
    trl_dpo.F = recorder
    try:
        yield recorder
    finally:
        trl_dpo.F = F


class SoftDPOTrainer(DPOTrainer):
    """TRL's ``DPOTrainer`` with :func:`soft_dpo_loss`, from the dataset's ``target`` and ``weight`` columns.

    The columns survive TRL's preparation (its ``map`` keeps columns, its length filter drops a row
    whole) and are let through the column pruning and the collator; the loss is normalised by
    the optimiser step's total weight, counted where the Trainer counts a step's items.
    """

    # The loss is already divided by the step's total weight: the Trainer must not divide it by the
    # number of accumulated batches again.
    loss_is_scaled_for_ga = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.loss_types != ["sigmoid"]:
            raise CharterError(f"soft targets and weights need loss_type sigmoid, not {self.loss_types}")
        if self.aux_loss_enabled:
            raise CharterError(
                "soft targets and weights cannot add a mixture-of-experts router loss: "
                "set targets: hard and weights: false (--targets hard --no-weights)"
            )
        self.data_collator = _KeepingRowColumns(self.data_collator)

    def _set_signature_columns_if_needed(self) -> None:
        super()._set_signature_columns_if_needed()
        self._signature_columns = [*self._signature_columns, *ROW_COLUMNS]

    def _get_num_items_in_batch(self, batch_samples: list, device: torch.device) -> torch.Tensor:
        return sum(batch["weight"].sum() for batch in batch_samples).to(device)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        targets, weights = (inputs.pop(column) for column in ROW_COLUMNS)
        with _recording_logits() as recorder:
            result = super().compute_loss(model, inputs, return_outputs)
        if len(recorder.calls) != 1 or recorder.calls[0].shape != targets.shape:
            raise RuntimeError("TRL's DPO sigmoid loss is not computed as SoftDPOTrainer expects")
        total = weights.sum() if num_items_in_batch is None else num_items_in_batch
        loss = soft_dpo_loss(
            recorder.calls[0], smoothed_targets(targets, self.label_smoothing), weights, total
        )
        return (loss, result[1]) if return_outputs else loss


class _KeepingRowColumns:
    """TRL's preference collator, with each row's ``target`` and ``weight`` added to the batch as tensors."""

    def __init__(self, collator: Any) -> None:
        self.collator = collator

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        batch = self.collator(examples)
        for column in ROW_COLUMNS:
            batch[column] = torch.tensor([float(example[column]) for example in examples])
        return batch
