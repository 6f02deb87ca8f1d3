"""What every TRL-backed trainer (DPO, SFT, GRPO/RLOO) is built with: CPU-safe arguments and LoRA.

TRL's configs default to bf16 and gradient checkpointing, slow or unsupported on a CPU, print
every log entry, save checkpoints and report to whatever integrations are installed; charter
writes its own checkpoint, its own progress bar and its own tracker (``tasks.train.tracking``),
so each trainer's config starts from these arguments and adds its algorithm's own.
"""

from __future__ import annotations

from typing import Any, Literal

from tasks.train.settings import LORA_TARGET_MODULES


def cpu_safe_arguments(precision: Literal["float32", "bfloat16"]) -> dict[str, Any]:
    """The ``TrainingArguments`` shared by charter's TRL trainers, for this machine's device."""
    import torch

    on_cpu = not torch.cuda.is_available()
    return {
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": [],
        "bf16": precision == "bfloat16" and not on_cpu,
        "use_cpu": on_cpu,
        "gradient_checkpointing": False,
        "dataloader_num_workers": 0,
        "disable_tqdm": True,
    }


def lora_config(enabled: bool, r: int, alpha: int) -> Any:
    """peft's LoRA config on the attention projections, or None to train every weight."""
    if not enabled:
        return None
    from peft import LoraConfig

    return LoraConfig(r=r, lora_alpha=alpha, target_modules=list(LORA_TARGET_MODULES), task_type="CAUSAL_LM")
