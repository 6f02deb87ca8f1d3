"""Benchmark: training throughput of charter's reward model, DPO (TRL) and PPO (charter's own).

One run, real data: the first pairs of ``../shared/data/hh-rlhf/harmless-base-test-sample.jsonl``
(read by charter's own hh-rlhf importer; the human-chosen response is ``chosen``, target 1.0).

* Reward model: charter's Bradley-Terry loop (``tasks.train.reward_model.train_reward_model``, MiniLM,
  max_length 256, batch 16) against the baseline TRL's ``RewardTrainer`` on the same pairs,
  model, batch size and length, pre-tokenized (MiniLM's tokenizer has no eos token, so raw text
  fails there), one epoch each; pairs/s = training pairs / wall time of the training loop
  (model loading and held-out evaluation excluded: charter's loop reports its own step time,
  TRL's ``train_runtime``).
* DPO: TRL's ``DPOTrainer`` through ``tasks.train.dpo.train_dpo`` (SmolLM2-135M, LoRA r=8, batch 4,
  max_length 384), ``--dpo-steps`` steps; s/step from TRL's ``train_runtime``.
* PPO: ``tasks.train.ppo.ppo_train`` on the full SmolLM2-135M (LoRA r=8 + value head), batch 8,
  32 new tokens, a rule reward (no reward model, so the figure is PPO's own cost), ``--ppo-steps``
  steps; s/step split into rollout (generation + scoring + reference + GAE) and update (PPO
  epochs), as the loop measures them. The first PPO step is reported apart (warm-up).

Ratios printed: charter's reward loop vs TRL's RewardTrainer (pairs/s), and PPO's s/step vs
DPO's. No target is asserted. The 1-minute load average is printed before and after: on a
2-core machine anything else running skews every figure.

Run from the project root::

    .venv/bin/python bench/train.py                 # all three (several minutes)
    .venv/bin/python bench/train.py --pairs 64 --dpo-steps 3 --ppo-steps 3
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


def bench_reward(records: list[dict[str, Any]]) -> dict[str, Any]:
    from trl import RewardConfig, RewardTrainer

    from datasets import Dataset
    from tasks.train.reward_model import format_text, load_backbone, train_reward_model
    from tasks.train.settings import RewardModelSettings

    config = RewardModelSettings(batch_size=16, max_length=256, epochs=1)
    _, _, history = train_reward_model(records, config, eval_records=[])
    ours = history.pairs_per_second

    model, tokenizer = load_backbone(config)

    def ids(record: dict[str, Any], key: str) -> list[int]:
        text = format_text(record["prompt"], record[key])
        return tokenizer(text, truncation=True, max_length=config.max_length)["input_ids"]

    dataset = Dataset.from_list(
        [{"chosen_ids": ids(r, "chosen"), "rejected_ids": ids(r, "rejected")} for r in records]
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
    trl = len(records) / runtime
    return {"pairs": len(records), "charter_pairs_per_s": ours, "trl_pairs_per_s": trl, "ratio": ours / trl}


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


def bench_ppo(records: list[dict[str, Any]], steps: int) -> dict[str, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tasks.backends.models import resolve_model
    from tasks.train.ppo import make_policy, ppo_train
    from tasks.train.settings import PPOSettings

    path = resolve_model(None).path
    tokenizer = AutoTokenizer.from_pretrained(path)
    config = PPOSettings(steps=steps, batch_size=8, max_new_tokens=32, mini_batch_size=4, ppo_epochs=2)
    policy = make_policy(AutoModelForCausalLM.from_pretrained(path), config)

    def reward(conversations: list[list[dict]], responses: list[str]) -> list[float]:
        return [float("appointment" in r.lower()) for r in responses]

    history = ppo_train(policy, tokenizer, [r["prompt"] for r in records], reward, config)
    timed = history[1:] or history
    return {
        "steps": steps,
        "batch_size": 8,
        "first_step_s": history[0]["rollout_s"] + history[0]["update_s"],
        "rollout_s": statistics.fmean(h["rollout_s"] for h in timed),
        "update_s": statistics.fmean(h["update_s"] for h in timed),
        "s_per_step": statistics.fmean(h["rollout_s"] + h["update_s"] for h in timed),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=128, help="reward-model training pairs (default 128)")
    parser.add_argument("--dpo-steps", type=int, default=4)
    parser.add_argument("--ppo-steps", type=int, default=4)
    parser.add_argument("--json", type=Path, help="also write the figures as JSON")
    args = parser.parse_args()
    if not DATA.is_file():
        print(f"missing {DATA}: ../shared must sit beside the project", file=sys.stderr)
        return 1
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    records = hh_records(max(args.pairs, args.dpo_steps * 4))
    report = {
        "reward": bench_reward(records[: args.pairs]),
        "dpo": bench_dpo(records, args.dpo_steps),
        "ppo": bench_ppo(records, args.ppo_steps),
        "load_average_1m": {"before": load_before, "after": os.getloadavg()[0]},
        "total_s": time.perf_counter() - started,
    }
    reward, dpo, ppo = report["reward"], report["dpo"], report["ppo"]
    print(f"charter training benchmark ({os.cpu_count()} CPUs), hh-rlhf pairs from {DATA.name}")
    print(
        f"reward model (MiniLM, batch 16, 256 tokens, {reward['pairs']} pairs): charter loop "
        f"{reward['charter_pairs_per_s']:.1f} pairs/s, TRL RewardTrainer "
        f"{reward['trl_pairs_per_s']:.1f} pairs/s ({reward['ratio']:.2f}x)"
    )
    print(f"DPO (TRL, SmolLM2-135M LoRA r=8, batch 4, {dpo['steps']} steps): {dpo['s_per_step']:.2f} s/step")
    print(
        f"PPO (charter, SmolLM2-135M LoRA r=8 + value head, batch 8, 32 new tokens, {ppo['steps']} steps): "
        f"{ppo['s_per_step']:.2f} s/step = rollout {ppo['rollout_s']:.2f} s + update {ppo['update_s']:.2f} s "
        f"(first step {ppo['first_step_s']:.2f} s); {ppo['s_per_step'] / dpo['s_per_step']:.2f}x DPO's s/step"
    )
    print(
        f"1-minute load average {load_before:.2f} before, {report['load_average_1m']['after']:.2f} after; "
        f"whole run {report['total_s']:.0f} s"
    )
    write_figures(report, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
