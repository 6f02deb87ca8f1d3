"""Benchmark: does a reward-model ensemble's uncertainty mean something? Two tables, one run.

The uncertainty of a pair is the spread (population sd over the members) of the members'
P(chosen better) (``RewardEnsemble.pair_probabilities``): shift-invariant, so the members'
arbitrary Bradley-Terry offsets do not count. Members: MiniLM, ``--ensemble`` of them, seeds and
bootstrap resamples (``tasks.train.ensemble.train_ensemble``), 1 epoch, 128 tokens (left-truncated).

**(a) Accuracy by uncertainty, hh-rlhf**: the ensemble trains on the first ``--hh-train`` usable
pairs of ``../shared/data/hh-rlhf/harmless-base-test-sample.jsonl`` (read by charter's importer; the
human-chosen response is chosen) and is measured on the next ``--hh-heldout``: held-out pairs in
quintiles of uncertainty with accuracy per quintile (``ensemble_metrics``). The same table for the
healthcare ensemble of (b) on its held-out human pairs (few: read it as a sketch).

**(b) In- vs out-of-distribution**: an ensemble trained on a healthcare preference set (the
bundled ``datasets/healthcare-scheduling/human-labels.jsonl``, people's choices, ties as target
0.5; a third held out by ``split_records``), then mean uncertainty on four sets of pairs, in two
like-for-like comparisons:

* people-written pairs: its held-out healthcare pairs (in distribution) vs hh-rlhf pairs (out);
* model-written pairs: two SmolLM2 samples per prompt, for the bundled healthcare prompts that the
  human labels do not use (in) vs the stress prompts ``datasets/healthcare-scheduling/stress.jsonl``
  (out; skipped with a note when the file is missing). Samples are cached (``--cache``).

PASS/MISS lines (never asserted): accuracy falls from the lowest to the highest quintile; the
out-of-distribution spread exceeds the in-distribution one, per comparison.

Run from the project root::

    .venv/bin/python bench/uncertainty.py                  # the full run (about 10 minutes, quiet)
    .venv/bin/python bench/uncertainty.py --json u.json    # also write the figures
    .venv/bin/python bench/uncertainty.py --hh-train 16 --hh-heldout 10 --ensemble 2   # a smoke run
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from machine import cached_samples, environment, write_figures  # bench/machine.py: on sys.path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tasks.ingest.human_labels.importer import parse_label_file
from tasks.ingest.prompt_sets import PromptRecord, load_prompt_set
from tasks.train.uncertainty import member_mean

ROOT = Path(__file__).resolve().parent.parent
HH_RLHF = ROOT.parent / "shared" / "data" / "hh-rlhf" / "harmless-base-test-sample.jsonl"
HEALTHCARE = ROOT / "datasets" / "healthcare-scheduling"
DEFAULT_CACHE = Path(os.environ.get("TMPDIR", "/tmp")) / "charter-bench" / "uncertainty-samples.json"
SEED = 7
TARGETS = {"a": 1.0, "b": 0.0, "tie": 0.5}


def label_records(path: Path, fmt: str) -> list[dict[str, Any]]:
    """A label file's usable pairs as preference records: A as "chosen", the target P(A better)."""
    parsed = parse_label_file(path, fmt)
    records = []
    for label, prompt in zip(parsed.labels, parsed.prompts, strict=True):
        if label["response_a"] == label["response_b"] or label["choice"] not in TARGETS:
            continue
        records.append(
            {
                "prompt": list(prompt.messages),
                "chosen": label["response_a"],
                "rejected": label["response_b"],
                "target": TARGETS[label["choice"]],
                "weight": 1.0,
                "family": prompt.family,
                "pair_id": label["pair_id"],
            }
        )
    return records


def sample_pairs(prompts: Sequence[PromptRecord], samples: dict[str, list[str]]) -> list[dict[str, Any]]:
    """Unlabelled pairs (target 0.5) of each prompt's first two samples, for their spread only."""
    return [
        {
            "prompt": list(p.messages),
            "chosen": samples[p.prompt_id][0],
            "rejected": samples[p.prompt_id][1],
            "target": 0.5,
            "weight": 1.0,
            "family": p.family,
        }
        for p in prompts
        if samples[p.prompt_id][0] != samples[p.prompt_id][1]
    ]


def spread(ensemble: Any, records: Sequence[dict[str, Any]]) -> float:
    _, spreads = ensemble.pair_probabilities(
        [r["prompt"] for r in records], [r["chosen"] for r in records], [r["rejected"] for r in records], 32
    )
    return member_mean(spreads)


def print_bins(title: str, metrics: dict[str, Any]) -> dict[str, Any]:
    bins = metrics["uncertainty_bins"]
    print(
        f"\n{title}: held-out accuracy {metrics['accuracy']:.3f} "
        f"on {metrics['decisive_pairs']} decisive pairs"
    )
    print("| quintile (1 = most certain) | pairs | spread range | mean spread | accuracy |")
    print("| --- | --- | --- | --- | --- |")
    for row in bins:
        print(
            f"| {row['bin']} | {row['pairs']} | {row['uncertainty_min']:.4f}-{row['uncertainty_max']:.4f} | "
            f"{row['mean_uncertainty']:.4f} | {row['accuracy']:.3f} |"
        )
    falls = len(bins) > 1 and bins[0]["accuracy"] > bins[-1]["accuracy"]
    print(
        f"{'PASS' if falls else 'MISS'}: accuracy falls from the lowest to the highest quintile "
        f"({bins[0]['accuracy']:.3f} -> {bins[-1]['accuracy']:.3f})"
    )
    return {"bins": bins, "accuracy": metrics["accuracy"], "falls": falls}


def compare(name: str, inside: tuple[str, float, int], outside: tuple[str, float, int]) -> dict[str, Any]:
    (in_name, in_spread, in_pairs), (out_name, out_spread, out_pairs) = inside, outside
    print(
        f"| {name} | {in_name} ({in_pairs}) | {in_spread:.4f} | "
        f"{out_name} ({out_pairs}) | {out_spread:.4f} | "
        f"{out_spread / in_spread:.2f}x |"
    )
    return {
        "in": {"set": in_name, "pairs": in_pairs, "mean_spread": in_spread},
        "out": {"set": out_name, "pairs": out_pairs, "mean_spread": out_spread},
        "ratio": out_spread / in_spread,
        "pass": out_spread > in_spread,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hh-train", type=int, default=160, help="hh-rlhf pairs to train on")
    parser.add_argument("--hh-heldout", type=int, default=250, help="hh-rlhf pairs held out")
    parser.add_argument("--ensemble", type=int, default=3)
    parser.add_argument("--stress-prompts", type=int, default=96, help="at most this many stress prompts")
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--backend", choices=("vllm", "hf"), default="vllm")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures as JSON to PATH")
    args = parser.parse_args()
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    started = time.perf_counter()
    print(f"load average before: {os.getloadavg()[0]:.1f}")

    # Model-written pairs first: vLLM's engine is closed before any training starts.
    human = label_records(HEALTHCARE / "human-labels.jsonl", "charter")
    labelled_texts = {r["prompt"][-1]["content"] for r in human}
    bundled = [p for p in load_prompt_set(HEALTHCARE / "prompts.jsonl") if p.text not in labelled_texts]
    stress_file = HEALTHCARE / "stress.jsonl"
    stress = load_prompt_set(stress_file)[: args.stress_prompts] if stress_file.is_file() else []
    in_prompts = bundled[: max(len(stress), 24)]
    samples = cached_samples(
        [*in_prompts, *stress],
        [2] * (len(in_prompts) + len(stress)),
        args.max_tokens,
        args.backend,
        args.cache,
        SEED,
    )

    from tasks.train.ensemble import ensemble_metrics, train_ensemble
    from tasks.train.reward_model import split_records
    from tasks.train.settings import RewardModelSettings

    config = RewardModelSettings(max_length=128, epochs=1, ensemble=args.ensemble, seed=SEED)
    hh = label_records(HH_RLHF, "hh-rlhf")
    hh_train, hh_held = hh[: args.hh_train], hh[args.hh_train : args.hh_train + args.hh_heldout]
    train_start = time.perf_counter()
    hh_ensemble = train_ensemble(hh_train, config, hh_held).ensemble
    hh_table = print_bins(
        f"(a) hh-rlhf: {args.ensemble} members trained on {len(hh_train)} pairs",
        ensemble_metrics(hh_ensemble, hh_held),
    )
    del hh_ensemble

    care_train, care_held = split_records(human, 0.34, SEED)
    care = train_ensemble(care_train, config, care_held).ensemble
    train_s = time.perf_counter() - train_start
    care_table = print_bins(
        f"(a') healthcare human labels: {args.ensemble} members trained on {len(care_train)} pairs",
        ensemble_metrics(care, care_held),
    )
    hh_ood = hh[: args.hh_heldout]
    print(
        "\n(b) mean uncertainty (members' sd of P(chosen better)), "
        f"healthcare ensemble ({len(care_train)} pairs)"
    )
    print(
        "| pairs | in distribution (pairs) | mean spread "
        "| out of distribution (pairs) | mean spread | out / in |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    comparisons = {
        "people-written": compare(
            "people-written",
            ("held-out healthcare human pairs", spread(care, care_held), len(care_held)),
            ("hh-rlhf pairs", spread(care, hh_ood), len(hh_ood)),
        )
    }
    in_pairs = sample_pairs(in_prompts, samples)
    stress_pairs = sample_pairs(stress, samples)
    if stress_pairs:
        comparisons["model-written"] = compare(
            "SmolLM2 samples",
            ("unlabelled bundled prompts", spread(care, in_pairs), len(in_pairs)),
            ("stress prompts", spread(care, stress_pairs), len(stress_pairs)),
        )
    else:
        print(f"(no stress comparison: {stress_file} is missing)")
    for name, result in comparisons.items():
        verdict = "PASS" if result["pass"] else "MISS"
        print(f"{verdict}: OOD spread > ID spread, {name} ({result['ratio']:.2f}x)")
    wall = time.perf_counter() - started
    print(f"wall time {wall:.0f} s (training {train_s:.0f} s); load average after: {os.getloadavg()[0]:.1f}")
    write_figures(
        {
            "environment": environment(),
            "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "hh_rlhf_bins": hh_table,
            "healthcare_bins": care_table,
            "in_vs_out": comparisons,
            "seconds": {"wall": wall, "training": train_s},
        },
        args.json,
    )


if __name__ == "__main__":
    main()
