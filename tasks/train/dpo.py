"""DPO on a charter preference set through TRL's ``DPOTrainer``, with LoRA and a frozen reference.

TRL does the optimisation; charter chooses the data (a stored preference set, optionally only
its confident rows), sets CPU-safe defaults (no bf16, no gradient checkpointing, LoRA on by
default so the reference is simply the base model with the adapter disabled) and measures
what changed: the policy's log-probability margin of chosen over rejected on the pairs.

TRL's DPO loss has no per-row weight, so a set's ``weight`` column is not used here (the
reward model honours it); ``min_confidence`` filters rows whose soft target is too close to
0.5 instead, and ``label_smoothing`` (conservative DPO) hedges against flipped labels.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tasks.core.errors import CharterError
from tasks.core.progress import progress
from tasks.train.logprobs import sequence_logprobs
from tasks.train.settings import DPOSettings


def confident_rows(rows: Sequence[dict[str, Any]], min_confidence: float) -> list[dict[str, Any]]:
    """The rows whose soft target is at least ``min_confidence`` away from a coin flip (scaled to [0, 1])."""
    return [row for row in rows if abs(2 * row["target"] - 1) >= min_confidence - 1e-12]


def training_rows(
    rows: Sequence[dict[str, Any]], min_confidence: float, source: str = "the preference set"
) -> list[dict[str, Any]]:
    """The rows DPO trains on; none left is an error that says why, before anything loads."""
    kept = confident_rows(rows, min_confidence)
    if not kept:
        raise CharterError(
            f"no preference rows left to train on: none of the {len(rows)} rows of {source} has a "
            f"confidence |2*target-1| of at least {min_confidence} (--min-confidence)"
        )
    return kept


def conversational_dataset(rows: Sequence[dict[str, Any]]):
    """TRL's conversational preference format: prompt messages, chosen and rejected assistant turns."""
    from datasets import Dataset

    return Dataset.from_list(
        [
            {
                "prompt": json.loads(row["prompt"]),
                "chosen": [{"role": "assistant", "content": row["chosen"]}],
                "rejected": [{"role": "assistant", "content": row["rejected"]}],
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


def train_dpo(
    model_path: str,
    rows: Sequence[dict[str, Any]],
    settings: DPOSettings,
    output_dir: str | Path,
    on_log: Callable[[dict[str, float]], None] | None = None,
) -> tuple[Any, Any, list[dict[str, float]]]:
    """Run DPO on ``rows`` (a preference set's rows) and return the model, tokenizer and TRL's log history."""
    import torch
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, PrinterCallback, TrainerCallback
    from trl import DPOConfig, DPOTrainer

    rows = training_rows(rows, settings.min_confidence)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    dtype = torch.bfloat16 if settings.precision == "bfloat16" else torch.float32
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype)
    on_cpu = not torch.cuda.is_available()
    config = DPOConfig(
        output_dir=str(output_dir),
        beta=settings.beta,
        loss_type=[settings.loss_type],
        label_smoothing=settings.label_smoothing,
        learning_rate=settings.learning_rate,
        max_steps=settings.steps,
        per_device_train_batch_size=settings.batch_size,
        gradient_accumulation_steps=1,
        max_length=settings.max_length,
        seed=settings.seed,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        # TRL defaults to bf16 and gradient checkpointing: slow or unsupported on CPU.
        bf16=settings.precision == "bfloat16" and not on_cpu,
        use_cpu=on_cpu,
        gradient_checkpointing=False,
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    peft_config = (
        LoraConfig(
            r=settings.lora_r,
            lora_alpha=settings.lora_alpha,
            target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
            task_type="CAUSAL_LM",
        )
        if settings.lora
        else None
    )

    class Relay(TrainerCallback):
        """Passes each log entry to ``on_log`` and each finished step to the progress bar."""

        def on_log(self, args, state, control, logs=None, **kwargs):
            if on_log is not None and logs:
                on_log(dict(logs))

        def on_step_end(self, args, state, control, **kwargs):
            bar.advance()

    trainer = DPOTrainer(
        model=model,
        args=config,
        train_dataset=conversational_dataset(rows),
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=[Relay()],
    )
    # With tqdm off the Trainer prints every log entry instead; the progress bar replaces both.
    trainer.remove_callback(PrinterCallback)
    with progress("DPO training", total=settings.steps, unit="steps") as bar:
        trainer.train()
    return trainer.model, tokenizer, list(trainer.state.log_history)
