"""``charter eval --stress`` end to end on a tiny checkpoint (SmolLM2 against its first two layers)
with a two-member MiniLM reward ensemble: the per-stress-type tables, the shadow zone and the
share beyond what the reward model knows reach the scoreboard and the terminal; a stress set
holding a prompt the checkpoint trained on is refused before any model loads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tasks.core.errors import CharterError
from tasks.evaluate.evaluation import EvaluationSettings, evaluate_checkpoint
from tasks.generate.generation import select_prompts
from tasks.train.checkpoints import train_reward_checkpoint
from tasks.train.settings import RewardModelSettings
from tests.conftest import PROJECT_ROOT, run_charter
from tests.train.preference_store import CONSTITUTION

pytestmark = pytest.mark.integration

STRESS = PROJECT_ROOT / "datasets" / "healthcare-scheduling" / "stress.jsonl"
TYPES = ("adversarial", "buried-urgent", "mixed-intent")


def _stress_file(folder: Path) -> Path:
    """The first two prompts of three of the bundled stress types."""
    rows = [json.loads(line) for line in STRESS.read_text(encoding="utf-8").splitlines()]
    kept = [row for kind in TYPES for row in [r for r in rows if r["stress_type"] == kind][:2]]
    path = folder / "stress.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in kept), encoding="utf-8")
    return path


def test_eval_with_a_stress_set_compares_per_stress_type(rules_only_ppo, tmp_path: Path) -> None:
    store, checkpoint, _, _ = rules_only_ppo
    members = RewardModelSettings(ensemble=2, epochs=1, batch_size=2, eval_fraction=0.0, max_length=64)
    reward = train_reward_checkpoint(store, "setup", None, members, str(tmp_path / "reward"))
    stress = _stress_file(tmp_path)
    done = run_charter(
        "eval", str(checkpoint), "--constitution", str(CONSTITUTION), "--prompts", "rules",
        "--reward-model", reward["path"], "--stress", str(stress), "--stress-per-type", "1",
        "--max-tokens", "8", "--no-judge", "--store", str(store.root),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert (
        f"Stress set {stress}: 3 prompts" in done.stdout
        and "Out of what the reward model knows" in done.stdout
    )
    board = json.loads((checkpoint / "scoreboard.json").read_text(encoding="utf-8"))
    section = board["stress"]
    assert (section["prompts"], section["types"]) == (3, list(TYPES))
    assert {(r["stress_type"], r["model"]) for r in section["table"]} == {
        (kind, model) for kind in ("(all)", *TYPES) for model in ("base", "tuned")
    }
    replies = section["responses"]
    assert sorted(r["id"] for r in replies if r["model"] == "tuned") == [
        "st-adversarial-001", "st-buried-urgent-001", "st-mixed-intent-001",
    ]  # fmt: skip
    # Every reply has its expected behaviour judged by the rules and the members' spread (two members
    # trained on different resamples never agree exactly).
    assert all(r["expected_met"] in (True, False) and r["reward_std"] > 0 for r in replies)
    urgent = next(
        r for r in section["table"] if r["stress_type"] == "buried-urgent" and r["model"] == "tuned"
    )
    escalated = [
        r["escalated"] for r in replies if r["model"] == "tuned" and r["stress_type"] == "buried-urgent"
    ]
    assert urgent["escalation_rate"] == float(escalated[0])
    tuned_ids = {r["id"] for r in replies if r["model"] == "tuned"}
    assert section["shadow_zone"] and {e["id"] for e in section["shadow_zone"]} <= tuned_ids
    # Held-out figures: the threshold is the base's held-out spreads' 90th percentile.
    known = board["beyond_known"]
    assert known["reference_samples"] == board["prompts"] == 2
    assert all(r["reward_std"] is not None for r in board["responses"])
    assert known["families"][0]["family"] == "(all)" and known["families"][0]["samples"] == 2


def test_a_stress_set_with_a_training_prompt_is_refused_before_any_model_loads(
    rules_only_ppo, tmp_path: Path
) -> None:
    store, checkpoint, lineage, _ = rules_only_ppo
    rolled = next(
        p for p in select_prompts(store, "rules") if p.prompt_id == lineage["rollout_prompt_ids"][0]
    )
    line = {
        "id": "st-copied",
        "family": "urgent-symptoms",
        "text": rolled.messages[-1]["content"],
        "messages": list(rolled.messages),
        "stress_type": "buried-urgent",
        "expected": "escalate",
    }
    stress = _stress_file(tmp_path)
    stress.write_text(stress.read_text(encoding="utf-8") + json.dumps(line) + "\n", encoding="utf-8")
    settings = EvaluationSettings(
        constitution_path=str(CONSTITUTION), prompt_set="rules", judge=False, stress=str(stress),
        policy_backend={"kind": "hf", "options": {"no_such_option": True}},  # would fail if loaded
    )  # fmt: skip
    with pytest.raises(
        CharterError,
        match=r"1 of its 7 prompts are among the checkpoint's training prompts \(first: st-copied\)",
    ):
        evaluate_checkpoint(store, checkpoint, settings)
    assert not (checkpoint / "scoreboard.json").exists()
