"""A TRL trainer's run under charter's progress bar, in place of the Trainer's own printing.

With tqdm off (charter's bar replaces it), a transformers ``Trainer`` prints every log entry
through its ``PrinterCallback``; this removes that printer and advances one bar per optimiser
step, so every TRL-backed trainer (DPO, SFT, ...) reports progress the same way. Per-step
metrics go elsewhere: to the run's tracker (``tasks.train.tracking``).
"""

from __future__ import annotations

from typing import Any

from tasks.core.progress import progress


def train_with_progress(trainer: Any, label: str, steps: int) -> None:
    """``trainer.train()`` with a progress bar of ``steps`` optimiser steps called ``label``."""
    from transformers import PrinterCallback, TrainerCallback

    with progress(label, total=steps, unit="steps") as bar:

        class StepProgress(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                bar.advance()

        trainer.remove_callback(PrinterCallback)
        trainer.add_callback(StepProgress())
        trainer.train()
