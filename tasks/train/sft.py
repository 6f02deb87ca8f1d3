"""SL-CAI: supervised fine-tuning on a critique run's final revisions, through TRL's ``SFTTrainer``.

The data is the critique run's SFT set, exactly what ``charter export sft`` writes for it (one
record per completed chain: the prompt, the final revision as the reply; revisions that are
commentary about the response rather than a reply are left out there). The chains are found
by repeating the run's recorded parameters (selection, constitution, critic model, critique
settings), as export does.

Each record goes to TRL as a conversational prompt-completion pair (prompt messages, then the
revision as the assistant's turn), so TRL's ``completion_only_loss`` trains on the revision's
tokens only, never the prompt's, whatever the chat template. (``assistant_only_loss`` would do
the same on ``messages`` records but needs ``{% generation %}`` markers, which SmolLM2's
template lacks and TRL cannot add for it.) LoRA is on by default, with DPO's target modules;
the adapter is merged into the saved model, so a later DPO or PPO run can start from it
(``model=<this checkpoint>``) and use it as the frozen reference.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tasks.backends.settings import BackendSettings
from tasks.constitution.model import load_constitution
from tasks.core.errors import CharterError
from tasks.core.hashing import content_id
from tasks.critique.plan import chain_states
from tasks.critique.settings import CritiqueSettings
from tasks.store.exports import sft_records
from tasks.store.store import Store
from tasks.train.checkpoints import _install, _made_by, _staging, _target
from tasks.train.lineage import lineage_record, policy_start
from tasks.train.logprobs import encode_completion, sequence_logprobs
from tasks.train.settings import SFTSettings
from tasks.train.tracking import check_report_to, tracked
from tasks.train.trainer_progress import train_with_progress
from tasks.train.trl_setup import cpu_safe_arguments, lora_config

_SELECTION_KEYS = ("prompt_set", "families", "limit", "prompt_ids")


def critique_run(store: Store, run_id: str | None = None) -> tuple[str, dict[str, Any]]:
    """The critique run whose chains make the SFT set, and the parameters it recorded.

    The latest completed critique run by default; else the run whose id starts with ``run_id``
    (a unique prefix is enough, as with git commits), whatever its status.
    """
    columns = ["run_id", "flow", "status", "parameters", "constitution_ids", "created_at"]
    events = [row for row in store.read("runs", columns).to_pylist() if row["flow"] == "critique"]
    started = {row["run_id"]: row for row in events if row["status"] == "started"}
    if run_id is None:
        completed = [row for row in events if row["status"] == "completed"]
        if not completed:
            raise CharterError("no completed critique run in the store: run `charter critique` first")
        chosen = max(completed, key=lambda row: row["created_at"])["run_id"]
    else:
        matches = sorted(run for run in started if run.startswith(run_id))
        if len(matches) != 1:
            found = "no critique run" if not matches else f"{len(matches)} critique runs"
            raise CharterError(
                f"{found} with id starting {run_id!r} (--critique-run); `charter sql "
                "\"select run_id, status, created_at from runs where flow = 'critique'\"` lists them"
            )
        chosen = matches[0]
    parameters = json.loads(started[chosen]["parameters"])
    recorded = {c for row in events if row["run_id"] == chosen for c in row["constitution_ids"]}
    return chosen, {**parameters, "constitution_ids": sorted(recorded)}


@dataclass(frozen=True)
class SFTSet:
    """A critique run's SFT records, and what of its chains did not make one."""

    critique_run: str
    records: list[dict[str, Any]]
    chains: int
    """The run's chains, complete or not."""
    left_out: dict[str, int]
    """Complete chains whose final revision is no training target, by reason."""


def sft_set(store: Store, run_id: str | None = None) -> SFTSet:
    """The SFT set of a critique run (the latest completed by default): ``export sft``'s records.

    Refused, before any model loads, when the constitution file the run read is gone or edited
    since (its chains could not be followed), or when no chain of the run makes a record.
    """
    chosen, parameters = critique_run(store, run_id)
    path = parameters["constitution"]
    if not Path(path).is_file():
        raise CharterError(f"critique run {chosen[:12]} read constitution {path}, which is no longer there")
    constitution_id = load_constitution(path).constitution_id
    used = parameters["constitution_ids"]
    if used and constitution_id not in used:
        raise CharterError(
            f"constitution {path} has changed since critique run {chosen[:12]} read it "
            f"(id {constitution_id[:12]}, the run used {', '.join(c[:12] for c in used)}): "
            "its chains cannot be followed; critique again or restore the file"
        )
    settings = CritiqueSettings(**{key: parameters[key] for key in CritiqueSettings.model_fields})
    selection = {key: parameters.get(key) for key in _SELECTION_KEYS}
    backend = BackendSettings(**parameters["backend"])
    states = chain_states(store, None, selection, path, settings, backend)
    records, left_out = sft_records(states, settings.rounds, few_shot=settings.config().few_shot)
    if not records:
        left = "; left out: " + ", ".join(f"{n} {why}" for why, n in sorted(left_out.items()))
        complete = sum(len(state.done) == settings.rounds for state in states)
        raise CharterError(
            f"critique run {chosen[:12]} has no SFT records: of its {len(states)} chains, {complete} "
            f"are complete ({settings.rounds} rounds){left if left_out else ''}"
        )
    return SFTSet(chosen, records, len(states), dict(left_out))


def sft_dataset(records: Sequence[dict[str, Any]]):
    """TRL's conversational prompt-completion format: the prompt's messages, the revision's turn."""
    from datasets import Dataset

    return Dataset.from_list(
        [{"prompt": record["messages"][:-1], "completion": record["messages"][-1:]} for record in records]
    )


def revision_loss(model: Any, tokenizer: Any, records: Sequence[dict[str, Any]]) -> float:
    """Mean negative log-likelihood per revision token (end of turn included), in nats: what SFT
    lowers on its records. Its exponential is the revisions' perplexity."""
    if not records:
        raise ValueError("no records to measure the revision loss on")
    prompts = [record["messages"][:-1] for record in records]
    revisions = [record["messages"][-1]["content"] for record in records]
    logprobs = sequence_logprobs(model, tokenizer, prompts, revisions)
    encoded = [encode_completion(tokenizer, p, r) for p, r in zip(prompts, revisions, strict=True)]
    tokens = sum(len(ids) - prompt_length for ids, prompt_length in encoded)
    return -sum(logprobs) / tokens


def train_sft(
    model_path: str,
    records: Sequence[dict[str, Any]],
    settings: SFTSettings,
    output_dir: str | Path,
    callbacks: Sequence[Any] = (),
) -> tuple[Any, Any, list[dict[str, float]]]:
    """Fine-tune on ``records`` (SFT records) and return the model, tokenizer and TRL's log history."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    dtype = torch.bfloat16 if settings.precision == "bfloat16" else torch.float32
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype)
    config = SFTConfig(
        output_dir=str(output_dir),
        learning_rate=settings.learning_rate,
        max_steps=settings.steps,
        per_device_train_batch_size=settings.batch_size,
        gradient_accumulation_steps=1,
        max_length=settings.max_length,
        completion_only_loss=True,
        seed=settings.seed,
        **cpu_safe_arguments(settings.precision),
    )
    peft_config = lora_config(settings.lora, settings.lora_r, settings.lora_alpha)
    trainer = SFTTrainer(
        model=model,
        args=config,
        train_dataset=sft_dataset(records),
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=list(callbacks),
    )
    train_with_progress(trainer, "SFT training", settings.steps)
    return trainer.model, tokenizer, list(trainer.state.log_history)


def train_sft_checkpoint(
    store: Store,
    run_id: str,
    critique_run: str | None,
    model: str | None,
    settings: SFTSettings,
    output: str | None,
) -> dict[str, Any]:
    """SFT on a critique run's SFT set (the latest completed run by default); saves the merged
    model at ``<checkpoint>/model`` with lineage: the critique run, constitution and principle
    ids, the record count, each step's loss and the revisions' token loss before and after.

    The records are found, and an empty set refused, before any model is loaded.
    """
    check_report_to(settings.report_to)
    data = sft_set(store, critique_run)
    records = data.records
    base, start = policy_start(model)
    # What was learnt, not which run wrote it: a resumed or repeated critique run that made the
    # same revisions reuses the checkpoint (the lineage still names the run).
    identity = {
        "records": content_id("sft_records", [record["messages"] for record in records]),
        "model": base.model_id,
        "settings": _made_by(settings),
    }
    path, done = _target(store, "sft", identity, output)
    if done is not None:
        return {**done, "path": str(path), "reused": True}
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base.path)
    probe = records[: settings.loss_records]
    loss_before = revision_loss(AutoModelForCausalLM.from_pretrained(base.path), tokenizer, probe)
    staging = _staging(path)
    with tracked(settings.report_to, staging / "logs", path.name) as tracker:
        trained, tokenizer, log = train_sft(
            base.path, records, settings, staging / "trainer", [tracker.callback()]
        )
    merged = trained.merge_and_unload() if hasattr(trained, "merge_and_unload") else trained
    loss_after = revision_loss(merged, tokenizer, probe)
    merged.save_pretrained(staging / "model")
    tokenizer.save_pretrained(staging / "model")
    shutil.rmtree(staging / "trainer", ignore_errors=True)
    steps = [entry for entry in log if "loss" in entry]
    record = lineage_record(
        kind="sft",
        run_id=run_id,
        base_model=base.model_id,
        set_id=None,
        rows=[],
        settings=settings.model_dump(),
        identity=identity,
        metrics={
            "loss_records": len(probe),
            "revision_loss_before": loss_before,
            "revision_loss_after": loss_after,
            "loss": [entry["loss"] for entry in steps],
            "train_seconds": next((e["train_runtime"] for e in log if "train_runtime" in e), None),
        },
        extra={
            "critique_run": data.critique_run,
            "records": len(records),
            "records_left_out": data.left_out,
            "constitution_ids": sorted({record["constitution_id"] for record in records}),
            "principle_ids": sorted({p for record in records for p in record["principle_ids"]}),
            # The prompts it learnt from, which a held-out evaluation must leave out.
            "prompt_ids": sorted({record["prompt_id"] for record in records}),
            "base_model_path": base.path,
            "model_path": str(path / "model"),
            **start,
        },
    )
    return _install(staging, path, record)
