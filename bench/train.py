"""Benchmark: training throughput of charter's reward model, DPO, SFT, GRPO (TRL) and PPO (charter's own).

One run, real data: the first pairs of ``../shared/data/hh-rlhf/harmless-base-test-sample.jsonl``
(read by charter's own hh-rlhf importer; the human-chosen response is ``chosen``, target 1.0).

* Reward model: charter's Bradley-Terry loop (``tasks.train.reward_model.train_reward_model``, MiniLM,
  max_length 256, batch 16) against the baseline TRL's ``RewardTrainer`` (its defaults: fused
  AdamW, dropout off, a plain shuffle, no length grouping) on the same pairs, model, batch size
  and length, pre-tokenized with charter's tokenizer (left truncation, so both train on the
  same token ids; MiniLM's tokenizer has no eos token, so raw text fails in TRL), one epoch
  each; pairs/s = training pairs / wall time of the training loop (model loading, tokenizing
  and held-out evaluation excluded: charter's loop reports its own step time, TRL's
  ``train_runtime``). ``--repeats N`` runs the two N times, alternating which goes first, and
  compares their medians. Target: charter's loop >= 1.0x TRL's pairs/s (PASS/MISS).
* DPO: TRL's ``DPOTrainer`` through ``tasks.train.dpo.train_dpo`` (SmolLM2-135M, LoRA r=8, batch 4,
  max_length 384), ``--dpo-steps`` steps; s/step from TRL's ``train_runtime``.
* PPO: ``tasks.train.ppo.ppo_train`` on the full SmolLM2-135M (LoRA r=8 + value head), batch 8,
  32 new tokens, a rule reward (no reward model, so the figure is PPO's own cost), ``--ppo-steps``
  steps; s/step split into rollout (generation + scoring + reference + GAE) and update (PPO
  epochs), as the loop measures them. The first PPO step is reported apart (warm-up).
* SFT: TRL's ``SFTTrainer`` through ``tasks.train.sft.train_sft`` (SmolLM2-135M, LoRA r=8, batch 4,
  max_length 384, loss on the reply only) on the pairs' prompts with the chosen reply as target,
  ``--sft-steps`` steps; s/step from TRL's ``train_runtime``.
* GRPO: TRL's ``GRPOTrainer`` through ``tasks.train.grpo.grpo_train`` at PPO's sizes (8 responses a
  step: 2 prompts x 4 generations, 32 new tokens, the same reward, KL beta 0.04), ``--grpo-steps``
  steps; s/step from TRL's ``step_time``, the first step apart.

Ratios printed: charter's reward loop vs TRL's RewardTrainer (pairs/s), PPO's s/step vs
DPO's, and GRPO's vs PPO's (the same responses per step), each when both ran. No target is
asserted. The 1-minute load average is printed before and after: on a 2-core machine anything
else running skews every figure.

Run from the project root::

    .venv/bin/python bench/train.py                 # all five (several minutes)
    .venv/bin/python bench/train.py --pairs 64 --dpo-steps 3 --ppo-steps 3 --sft-steps 3 --grpo-steps 3
    .venv/bin/python bench/train.py --only reward --repeats 3   # the reward model only
    .venv/bin/python bench/train.py --json train.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from machine import write_figures  # bench/machine.py: this script's folder is on sys.path

from tasks.ingest.human_labels import parse_label_file

DATA = (
    Path(__file__).resolve().parent.parent.parent
    / "shared"
    / "data"
    / "hh-rlhf"
    / "harmless-base-test-sample.jsonl"
)


def hh_records(limit: int) -> list[dict[str, Any]]:
    """The first ``limit`` hh-rlhf pairs as preference records (chosen = the human's choice)."""
    parsed = parse_label_file(str(DATA), "hh-rlhf")
    prompts = {p.prompt_id: list(p.messages) for p in parsed.prompts}
    records = []
    for label in parsed.labels[:limit]:
        chosen_is_a = label["preferred_id"] == label["response_a_id"]
        records.append(
            {
                "prompt": prompts[label["prompt_id"]],
                "chosen": label["response_a"] if chosen_is_a else label["response_b"],
                "rejected": label["response_b"] if chosen_is_a else label["response_a"],
                "target": 1.0,
                "weight": 1.0,
                "pair_id": label["pair_id"],
                "decided_by": "human",
            }
        )
    return records


REWARD_TARGET = 1.0
"""charter's reward loop should train at least as many pairs/s as TRL's RewardTrainer."""


def charter_reward_pairs_per_s(records: list[dict[str, Any]], config: Any) -> float:
    from tasks.train.reward_model import train_reward_model

    return train_reward_model(records, config, eval_records=[])[2].pairs_per_second


def trl_reward_pairs_per_s(records: list[dict[str, Any]], config: Any) -> float:
    from trl import RewardConfig, RewardTrainer

    from datasets import Dataset
    from tasks.train.reward_batches import encode_pairs
    from tasks.train.reward_metrics import PreferenceRecord
    from tasks.train.reward_model import load_backbone

    model, tokenizer = load_backbone(config)
    encoded = encode_pairs(
        tokenizer, [PreferenceRecord.model_validate(r) for r in records], config.max_length
    )
    dataset = Dataset.from_list(
        [{"chosen_ids": p.chosen_ids, "rejected_ids": p.rejected_ids} for p in encoded]
    )
    with tempfile.TemporaryDirectory() as output:
        args = RewardConfig(
            output_dir=output,
            per_device_train_batch_size=config.batch_size,
            num_train_epochs=1,
            learning_rate=config.learning_rate,
            max_length=config.max_length,
            use_cpu=True,
            bf16=False,
            gradient_checkpointing=False,
            report_to=[],
            save_strategy="no",
            logging_steps=1000,
            disable_tqdm=True,
        )
        trainer = RewardTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)
        runtime = trainer.train().metrics["train_runtime"]
    return len(records) / runtime


def bench_reward(records: list[dict[str, Any]], repeats: int) -> dict[str, Any]:
    """Both loops ``repeats`` times, alternating which runs first (so warm-up and drifting load
    do not always favour the same one); the ratio is of the medians."""
    from tasks.train.settings import RewardModelSettings

    config = RewardModelSettings(batch_size=16, max_length=256, epochs=1)
    runs: dict[str, list[float]] = {"charter": [], "trl": []}
    measure = {"charter": charter_reward_pairs_per_s, "trl": trl_reward_pairs_per_s}
    for repeat in range(repeats):
        for name in ("charter", "trl") if repeat % 2 == 0 else ("trl", "charter"):
            runs[name].append(measure[name](records, config))
    ours, trl = statistics.median(runs["charter"]), statistics.median(runs["trl"])
    return {
        "pairs": len(records),
        "repeats": repeats,
        "charter_pairs_per_s": ours,
        "trl_pairs_per_s": trl,
        "charter_runs": runs["charter"],
        "trl_runs": runs["trl"],
        "ratio": ours / trl,
        "target": REWARD_TARGET,
        "pass": ours / trl >= REWARD_TARGET,
    }


def bench_dpo(records: list[dict[str, Any]], steps: int) -> dict[str, Any]:
    from tasks.backends.models import resolve_model
    from tasks.train.dpo import train_dpo
    from tasks.train.settings import DPOSettings

    rows = [{**r, "prompt": json.dumps(r["prompt"])} for r in records[: steps * 4]]
    settings = DPOSettings(steps=steps, batch_size=4, max_length=384)
    with tempfile.TemporaryDirectory() as output:
        _, _, log = train_dpo(resolve_model(None).path, rows, settings, output)
    runtime = next(entry["train_runtime"] for entry in log if "train_runtime" in entry)
    return {"steps": steps, "batch_size": 4, "s_per_step": runtime / steps}


def bench_sft(records: list[dict[str, Any]], steps: int) -> dict[str, Any]:
    """SFT (TRL's SFTTrainer through ``train_sft``) on the pairs' prompts with the human-chosen
    reply as the revision: the records ``charter train sft`` makes from a critique run."""
    from tasks.backends.models import resolve_model
    from tasks.train.settings import SFTSettings
    from tasks.train.sft import train_sft

    sft = [{"messages": [*r["prompt"], {"role": "assistant", "content": r["chosen"]}]} for r in records]
    settings = SFTSettings(steps=steps, batch_size=4, max_length=384)
    with tempfile.TemporaryDirectory() as output:
        _, _, log = train_sft(resolve_model(None).path, sft[: steps * 4], settings, output)
    runtime = next(entry["train_runtime"] for entry in log if "train_runtime" in entry)
    return {"steps": steps, "batch_size": 4, "s_per_step": runtime / steps}


def appointment_reward(conversations: list[list[dict]], responses: list[str]) -> list[float]:
    """PPO's and GRPO's reward here: a string check, so the figures are the optimisers' own cost."""
    return [float("appointment" in r.lower()) for r in responses]


def bench_grpo(records: list[dict[str, Any]], steps: int) -> dict[str, Any]:
    """GRPO (TRL's GRPOTrainer through ``grpo_train``) at PPO's sizes: 8 responses a step (2 prompts
    x 4 generations), 32 new tokens, the same reward; s/step from TRL's ``step_time``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tasks.backends.models import resolve_model
    from tasks.train.grpo import grpo_train
    from tasks.train.rewards import NamedReward
    from tasks.train.settings import GRPOSettings

    path = resolve_model(None).path
    settings = GRPOSettings(steps=steps, batch_size=2, num_generations=4, max_new_tokens=32)
    rewards = [NamedReward("appointment", appointment_reward)]
    with tempfile.TemporaryDirectory() as output:
        model = AutoModelForCausalLM.from_pretrained(path)
        _, log = grpo_train(
            model,
            AutoTokenizer.from_pretrained(path),
            [r["prompt"] for r in records],
            rewards,
            settings,
            output,
        )
    times = [entry["step_time"] for entry in log if "step_time" in entry]
    timed = times[1:] or times
    return {
        "steps": steps,
        "responses_per_step": 8,
        "first_step_s": times[0],
        "s_per_step": statistics.fmean(timed),
    }


def bench_ppo(records: list[dict[str, Any]], steps: int) -> dict[str, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tasks.backends.models import resolve_model
    from tasks.train.ppo import make_policy, ppo_train
    from tasks.train.settings import PPOSettings

    path = resolve_model(None).path
    tokenizer = AutoTokenizer.from_pretrained(path)
    config = PPOSettings(steps=steps, batch_size=8, max_new_tokens=32, mini_batch_size=4, ppo_epochs=2)
    policy = make_policy(AutoModelForCausalLM.from_pretrained(path), config)

    history = ppo_train(policy, tokenizer, [r["prompt"] for r in records], appointment_reward, config)
    timed = history[1:] or history
    return {
        "steps": steps,
        "batch_size": 8,
        "first_step_s": history[0]["rollout_s"] + history[0]["update_s"],
        "rollout_s": statistics.fmean(h["rollout_s"] for h in timed),
        "update_s": statistics.fmean(h["update_s"] for h in timed),
        "s_per_step": statistics.fmean(h["rollout_s"] + h["update_s"] for h in timed),
    }


BENCHES = ("reward", "dpo", "sft", "ppo", "grpo")


def report_lines(report: dict[str, Any]) -> list[str]:
    """One line per bench that ran; a ratio to another bench only when that one ran too."""
    lines = []
    if reward := report.get("reward"):
        lines.append(
            f"reward model (MiniLM, batch 16, 256 tokens, {reward['pairs']} pairs, median of "
            f"{reward['repeats']}): charter loop {reward['charter_pairs_per_s']:.2f} pairs/s, "
            f"baseline TRL RewardTrainer {reward['trl_pairs_per_s']:.2f} pairs/s: {reward['ratio']:.2f}x "
            f"(target >= {reward['target']:.1f}x: {'PASS' if reward['pass'] else 'MISS'}); runs: charter "
            + ", ".join(f"{x:.2f}" for x in reward["charter_runs"])
            + "; TRL "
            + ", ".join(f"{x:.2f}" for x in reward["trl_runs"])
        )
    dpo, sft, ppo, grpo = (report.get(k) for k in ("dpo", "sft", "ppo", "grpo"))
    if dpo:
        lines.append(
            f"DPO (TRL, SmolLM2-135M LoRA r=8, batch 4, {dpo['steps']} steps): {dpo['s_per_step']:.2f} s/step"
        )
    if ppo:
        vs_dpo = f"; {ppo['s_per_step'] / dpo['s_per_step']:.2f}x DPO's s/step" if dpo else ""
        lines.append(
            f"PPO (charter, SmolLM2-135M LoRA r=8 + value head, batch 8, 32 new tokens, "
            f"{ppo['steps']} steps): {ppo['s_per_step']:.2f} s/step = rollout {ppo['rollout_s']:.2f} s "
            f"+ update {ppo['update_s']:.2f} s (first step {ppo['first_step_s']:.2f} s){vs_dpo}"
        )
    if sft:
        lines.append(
            f"SFT (TRL, SmolLM2-135M LoRA r=8, batch 4, {sft['steps']} steps): {sft['s_per_step']:.2f} s/step"
        )
    if grpo:
        vs_ppo = (
            f"; {grpo['s_per_step'] / ppo['s_per_step']:.2f}x PPO's s/step for the same 8 responses a step"
            if ppo
            else ""
        )
        lines.append(
            f"GRPO (TRL, SmolLM2-135M LoRA r=8, 2 prompts x 4 generations, 32 new tokens, "
            f"{grpo['steps']} steps): {grpo['s_per_step']:.2f} s/step "
            f"(first step {grpo['first_step_s']:.2f} s){vs_ppo}"
        )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=128, help="reward-model training pairs (default 128)")
    parser.add_argument("--repeats", type=int, default=1, help="reward-model runs of each loop (default 1)")
    parser.add_argument("--dpo-steps", type=int, default=4)
    parser.add_argument("--ppo-steps", type=int, default=4)
    parser.add_argument("--sft-steps", type=int, default=4)
    parser.add_argument("--grpo-steps", type=int, default=4)
    parser.add_argument(
        "--only", action="append", choices=BENCHES, help="run only this bench (repeatable; default: all)"
    )
    parser.add_argument("--json", type=Path, help="also write the figures as JSON")
    args = parser.parse_args()
    if not DATA.is_file():
        print(f"missing {DATA}: ../shared must sit beside the project", file=sys.stderr)
        return 1
    chosen = args.only or list(BENCHES)
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    records = hh_records(max(args.pairs, args.dpo_steps * 4, args.sft_steps * 4))
    runners = {
        "reward": lambda: bench_reward(records[: args.pairs], args.repeats),
        "dpo": lambda: bench_dpo(records, args.dpo_steps),
        "sft": lambda: bench_sft(records, args.sft_steps),
        "ppo": lambda: bench_ppo(records, args.ppo_steps),
        "grpo": lambda: bench_grpo(records, args.grpo_steps),
    }
    report: dict[str, Any] = {name: runners[name]() for name in BENCHES if name in chosen}
    report["load_average_1m"] = {"before": load_before, "after": os.getloadavg()[0]}
    report["total_s"] = time.perf_counter() - started
    print(f"charter training benchmark ({os.cpu_count()} CPUs), hh-rlhf pairs from {DATA.name}")
    for line in report_lines(report):
        print(line)
    print(
        f"1-minute load average {load_before:.2f} before, {report['load_average_1m']['after']:.2f} after; "
        f"whole run {report['total_s']:.0f} s"
    )
    write_figures(report, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
