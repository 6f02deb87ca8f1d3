"""A race (``compare.json``) for the report tests, made by the race's own arithmetic
(:mod:`tasks.evaluate.race`) from hand-chosen verdicts, so the report, not a model, is under test.

One candidate's folder name carries markup, which the page must show as text.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tasks.evaluate.race import lineage_summary, race_entrants, standings, win_matrix

MARKUP_NAME = "<img src=x onerror=alert(1)>"


def _lineage(kind: str, **extra: Any) -> dict[str, Any]:
    return {
        "kind": kind,
        "run_id": f"run-{kind}",
        "base_model": "fixture-model",
        "base_model_path": "/models/base",
        "model_path": f"/models/{kind}",
        "preference_set": "set-1",
        "created_at": "2026-01-02T03:04:05+00:00",
    } | extra


def race_record(folder: Path) -> dict[str, Any]:
    field = race_entrants(
        [(str(folder / "dpo-a"), _lineage("dpo")), (str(folder / MARKUP_NAME), _lineage("ppo"))]
    )
    dpo, ppo, base = (e.name for e in field)
    verdicts = [
        ("reward model", dpo, ppo, [1.0, 0.0]),
        ("reward model", dpo, base, [1.0, 1.0]),
        ("reward model", ppo, base, [1.0, 0.5]),
        ("ai judge", dpo, ppo, [0.7, 0.6]),
        ("ai judge", dpo, base, [0.8, 0.4]),
        ("ai judge", ppo, base, [0.3, 0.2]),
    ]
    contests = [
        {"judge": judge, "family": family, "first": first, "second": second, "p_first": p}
        for judge, first, second, ps in verdicts
        for family, p in zip(("booking", "urgent-symptoms"), ps, strict=True)
    ]
    families = [
        {"model": name, "family": "(all)", "responses": 2, "reward": reward, "rule_pass_rate": rules}
        | {"kl_to_reference": kl}
        for name, reward, rules, kl in ((dpo, 0.6, 0.75, 0.3), (ppo, 0.4, 1.0, 0.1), (base, 0.1, 0.5, 0.0))
    ]
    matrix = win_matrix(contests)
    accuracy = {
        dpo: {"checkpoint": str(folder / "dpo-a"), "decisive_pairs": 4, "implicit_reward_accuracy": 0.75},
        ppo: {"checkpoint": str(folder / MARKUP_NAME), "decisive_pairs": 4, "implicit_reward_accuracy": 0.5},
    }
    stress = {
        "file": "stress.jsonl",
        "table": [
            {"stress_type": kind, "model": model, "expected_rate": rate}
            for kind, model, rate in (("buried-urgent", "base", 0.0), ("buried-urgent", "tuned", 1.0))
        ],
    }
    return {
        "created_at": "2026-01-02T04:00:00+00:00",
        "prompts": 2,
        "reward_model": "rm-checkpoint",
        "judge": {"model": "fixture-model", "backend": "hf"},
        "entrants": [{"name": e.name, "role": e.role} for e in field],
        "standings": standings(field, families, matrix, accuracy),
        "win_matrix": matrix,
        "lineage": [lineage_summary(e) for e in field if e.role == "candidate"],
        "candidates": {
            dpo: {"length_check": None, "stress": stress},
            ppo: {"length_check": None, "stress": stress},
        },
        "preferences": {
            "source": "held-out.jsonl",
            "overlap": [{"checkpoint": str(folder / "dpo-a"), "overlapping": 0}],
            "accuracy": accuracy,
        },
    }


def write_race(store_root: Path) -> dict[str, Any]:
    """The race saved where ``charter compare`` saves one; returns it."""
    race = race_record(store_root / "checkpoints")
    path = store_root / "compare" / "fixture" / "compare.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(race), encoding="utf-8")
    return race
