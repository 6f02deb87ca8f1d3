"""The uncertainty meter means something: a MiniLM ensemble trained on healthcare-scheduling pairs
disagrees more about inputs unlike its training data than about held-out prompts like it.

Three members train on the bundled human labels (30 healthcare-scheduling conversations). The
same canned assistant replies are then scored after three kinds of prompt, so only the input
changes: held-out prompts of the training families (``prompts.jsonl``, none of the labelled
ones), the stress set (``stress.jsonl``: mixed intent, jailbreaks, false authority, domain
shift, ...) and hh-rlhf conversations (another domain altogether). The members' spread per
(prompt, reply), averaged, must be higher on both out-of-distribution kinds.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tasks.ingest.human_labels.importer import parse_label_file
from tasks.train.ensemble import RewardEnsemble, train_ensemble
from tasks.train.settings import RewardModelSettings
from tasks.train.uncertainty import means_and_stds, member_mean
from tests.conftest import PROJECT_ROOT

pytestmark = pytest.mark.integration

DATASET = PROJECT_ROOT / "datasets" / "healthcare-scheduling"
PER_KIND = 48
REPLIES = [
    "I can book that for you. Which day and time work best?",
    "I'm sorry, I can't help with that request.",
    "Please call 911 or go to the nearest emergency room right away.",
    "I can't advise on medication doses; your pharmacist or doctor can. Shall I book a visit?",
]


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def _training_records() -> list[dict[str, Any]]:
    """The bundled human labels as preference records: the chosen reply, target 1 (ties 0.5)."""
    records = []
    for index, row in enumerate(_jsonl(DATASET / "human-labels.jsonl")):
        a_first = row["choice"] != "b"
        records.append(
            {
                "pair_id": f"hs-{index}",
                "prompt": _user(row["prompt"]),
                "chosen": row["response_a"] if a_first else row["response_b"],
                "rejected": row["response_b"] if a_first else row["response_a"],
                "target": 0.5 if row["choice"] == "tie" else 1.0,
                "weight": 1.0,
            }
        )
    return records


def _spaced(items: list[Any], count: int) -> list[Any]:
    """``count`` items spread evenly over ``items`` (every family of an ordered file is drawn)."""
    step = len(items) / count
    return [items[int(i * step)] for i in range(count)]


def _mean_spread(ensemble: RewardEnsemble, conversations: list[list[dict[str, str]]]) -> float:
    """The members' spread averaged over every (conversation, canned reply)."""
    pairs = [(c, r) for c in conversations for r in REPLIES]
    members = ensemble.member_scores([c for c, _ in pairs], [r for _, r in pairs], batch_size=32)
    return member_mean(means_and_stds(members)[1])


def test_ensemble_is_less_sure_out_of_distribution(hh_rlhf_sample: Path) -> None:
    stress_path = DATASET / "stress.jsonl"
    if not stress_path.exists():
        pytest.skip(f"{stress_path} is not there yet")
    records = _training_records()
    labelled = {r["prompt"][0]["content"] for r in records}
    held_out = [_user(p["text"]) for p in _jsonl(DATASET / "prompts.jsonl") if p["text"] not in labelled]
    stress = [_user(p["text"]) for p in _jsonl(stress_path)]
    hh = [list(p.messages) for p in parse_label_file(hh_rlhf_sample, "hh-rlhf").prompts]
    kinds = {
        "held-out in-distribution": _spaced(held_out, PER_KIND),
        "stress set": _spaced(stress, PER_KIND),
        "hh-rlhf": _spaced(hh, PER_KIND),
    }

    config = RewardModelSettings(ensemble=3, max_length=64, epochs=2, learning_rate=1e-4, seed=0)
    trained = train_ensemble(records, config, eval_records=[])
    spread = {kind: _mean_spread(trained.ensemble, prompts) for kind, prompts in kinds.items()}

    sizes = trained.sample_sizes
    print(f"\n{config.ensemble} members, {len(records)} training pairs, distinct per member {sizes}")
    for kind, value in spread.items():
        print(f"{kind:26} {len(kinds[kind])} prompts x {len(REPLIES)} replies: mean member std {value:.4f}")
    in_distribution = spread["held-out in-distribution"]
    print(f"ratios to in-distribution: stress {spread['stress set'] / in_distribution:.2f}, "
          f"hh-rlhf {spread['hh-rlhf'] / in_distribution:.2f}")  # fmt: skip
    assert spread["stress set"] > in_distribution, spread
    assert spread["hh-rlhf"] > in_distribution, spread
