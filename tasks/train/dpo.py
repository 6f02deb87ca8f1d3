"""DPO on a charter preference set through TRL's ``DPOTrainer``, with LoRA and a frozen reference.

TRL does the optimisation; charter chooses the data (a stored preference set, optionally only
its confident rows), sets CPU-safe defaults (no bf16, no gradient checkpointing, LoRA on by
default so the reference is simply the base model with the adapter disabled) and measures
what changed: the policy's log-probability margin of chosen over rejected on the pairs.

TRL's DPO has neither soft targets nor per-row weights; with ``loss_type: sigmoid`` charter's
``SoftDPOTrainer`` (``tasks.train.dpo_loss``) adds both: ``targets: soft`` trains on each row's
target p, ``weights`` scales each row's loss by its weight (weight-0 rows are left out), and
``label_smoothing`` folds conservative DPO's flip probability into p. ``targets: hard`` with
``weights: false`` is TRL's sigmoid loss. The other loss types are TRL's own, on hard labels.
``min_confidence`` can still drop the rows whose target is too close to 0.5.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tasks.core.errors import CharterError
from tasks.train.logprobs import sequence_logprobs
from tasks.train.settings import DPOSettings
from tasks.train.tracking import check_report_to, tracked
from tasks.train.trainer_progress import train_with_progress
from tasks.train.trl_setup import cpu_safe_arguments, lora_config


def confident_rows(rows: Sequence[dict[str, Any]], min_confidence: float) -> list[dict[str, Any]]:
    """The rows whose soft target is at least ``min_confidence`` away from a coin flip (scaled to [0, 1])."""
    return [row for row in rows if abs(2 * row["target"] - 1) >= min_confidence - 1e-12]


def training_rows(
    rows: Sequence[dict[str, Any]], settings: DPOSettings, source: str = "the preference set"
) -> list[dict[str, Any]]:
    """The rows DPO trains on (confident enough; with ``weights``, a weight above 0: a weight-0 row
    would change nothing but cost its forward passes). None left is an error that says why,
    before anything loads."""
    confident = confident_rows(rows, settings.min_confidence)
    if not confident:
        raise CharterError(
            f"no preference rows left to train on: none of the {len(rows)} rows of {source} has a "
            f"confidence |2*target-1| of at least {settings.min_confidence} (--min-confidence)"
        )
    kept = [row for row in confident if row["weight"] > 0] if settings.weights else confident
    if not kept:
        raise CharterError(
            f"no preference rows left to train on: every row of {source} kept by --min-confidence has "
            "weight 0 (--no-weights counts each row as weight 1)"
        )
    return kept


def conversational_dataset(rows: Sequence[dict[str, Any]], settings: DPOSettings):
    """TRL's conversational preference format (prompt messages, chosen and rejected assistant turns),
    with each row's ``target`` (1 for ``targets: hard``) and ``weight`` (1 without ``weights``)."""
    from datasets import Dataset

    return Dataset.from_list(
        [
            {
                "prompt": json.loads(row["prompt"]),
                "chosen": [{"role": "assistant", "content": row["chosen"]}],
                "rejected": [{"role": "assistant", "content": row["rejected"]}],
                "target": float(row["target"]) if settings.targets == "soft" else 1.0,
                "weight": float(row["weight"]) if settings.weights else 1.0,
            }
            for row in rows
        ]
    )


def logprob_margin(model: Any, tokenizer: Any, rows: Sequence[dict[str, Any]]) -> float:
    """Mean over pairs of log pi(chosen) - log pi(rejected): what DPO should raise on its training pairs."""
    if not rows:
        raise ValueError("no pairs to measure the log-prob margin on")
    prompts = [json.loads(row["prompt"]) for row in rows]
    chosen = sequence_logprobs(model, tokenizer, prompts, [row["chosen"] for row in rows])
    rejected = sequence_logprobs(model, tokenizer, prompts, [row["rejected"] for row in rows])
    return sum(c - r for c, r in zip(chosen, rejected, strict=True)) / len(rows)


def dpo_trainer(
    model: Any,
    tokenizer: Any,
    rows: Sequence[dict[str, Any]],
    settings: DPOSettings,
    output_dir: str | Path,
    callbacks: Sequence[Any] = (),
) -> Any:
    """TRL's ``DPOTrainer`` for ``settings`` on exactly ``rows`` (charter's ``SoftDPOTrainer`` for the
    sigmoid loss), its printed logs replaced by ``callbacks``."""
    from transformers import PrinterCallback
    from trl import DPOConfig, DPOTrainer

    from tasks.train.dpo_loss import SoftDPOTrainer

    config = DPOConfig(
        output_dir=str(output_dir),
        beta=settings.beta,
        loss_type=[settings.loss_type],
        label_smoothing=settings.label_smoothing,
        learning_rate=settings.learning_rate,
        max_steps=settings.steps,
        per_device_train_batch_size=settings.batch_size,
        gradient_accumulation_steps=settings.gradient_accumulation_steps,
        max_length=settings.max_length,
        seed=settings.seed,
        **cpu_safe_arguments(settings.precision),
    )
    peft_config = lora_config(settings.lora, settings.lora_r, settings.lora_alpha)
    trainer_class = SoftDPOTrainer if settings.loss_type == "sigmoid" else DPOTrainer
    trainer = trainer_class(
        model=model,
        args=config,
        train_dataset=conversational_dataset(rows, settings),
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=list(callbacks),
    )
    # With tqdm off the Trainer prints every log entry instead; charter's progress bar replaces both.
    trainer.remove_callback(PrinterCallback)
    return trainer


def train_dpo(
    model_path: str,
    rows: Sequence[dict[str, Any]],
    settings: DPOSettings,
    output_dir: str | Path,
    log_dir: str | Path | None = None,
    run_name: str = "dpo",
) -> tuple[Any, Any, list[dict[str, float]]]:
    """Run DPO on ``rows`` (a preference set's rows) and return the model, tokenizer and TRL's log history.

    Per-step metrics go to ``settings.report_to`` under ``log_dir`` (default ``output_dir/logs``),
    with TRL's names (``loss``, ``rewards/margins``, ...).
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    rows = training_rows(rows, settings)
    check_report_to(settings.report_to)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    dtype = torch.bfloat16 if settings.precision == "bfloat16" else torch.float32
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype)

    logs = Path(log_dir) if log_dir is not None else Path(output_dir) / "logs"
    with tracked(settings.report_to, logs, run_name) as tracker:
        trainer = dpo_trainer(model, tokenizer, rows, settings, output_dir, [tracker.callback()])
        train_with_progress(trainer, "DPO training", settings.steps)
    return trainer.model, tokenizer, list(trainer.state.log_history)
