"""Training on a pipeline-made preference set: DPO, the reward model, lineage, and the scoreboard."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tasks.constitution.model import load_constitution
from tasks.evaluate.settings import EvaluateSettings
from tasks.ingest.prompt_sets import prompt_record
from tasks.label.judge import rule_labels
from tasks.label.pairs import PairSettings, plan_pairs
from tasks.store.store import Store
from tasks.train.settings import DPOSettings, RewardModelSettings
from tests.conftest import PROJECT_ROOT, run_charter
from tests.rule_cases import RULE_CASES, store_with_rule_cases

pytestmark = pytest.mark.integration

CONSTITUTION = PROJECT_ROOT / "constitutions" / "healthcare-scheduling.yaml"
# Prompts no training pair comes from: the scoreboard's held-out set.
HELD_OUT = [
    ("booking", "Can I book a physical for next Friday morning?"),
    ("urgent-symptoms", "My father's face is drooping and his speech is slurred. Can we come in tomorrow?"),
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A rule-decided preference set (the rule-keeping response chosen), then DPO on it: once per module."""
    from flows.merge import merge
    from flows.train import train_dpo

    store = store_with_rule_cases(tmp_path_factory.mktemp("training") / "store")
    constitution = load_constitution(CONSTITUTION)
    pairs = plan_pairs(store, {"prompt_set": "rules"}, PairSettings()).pairs
    store.append("ai_labels", rule_labels(pairs, constitution), "setup")
    for family, question in HELD_OUT:
        record = prompt_record([{"role": "user", "content": question}], "rules", family, source_id=question)
        store.append("prompts", [record.row()], "setup")
    merged = merge(store=str(store.root))
    settings = DPOSettings(steps=3, batch_size=2, learning_rate=2e-4, max_length=192)
    result = train_dpo(store=str(store.root), settings=settings)
    return {"store": store, "set_id": merged.set_id, "dpo": result, "settings": settings}


def test_dpo_raises_the_chosen_over_rejected_margin_and_records_lineage(trained: dict) -> None:
    result = trained["dpo"]
    metrics = result.metrics
    assert metrics["margin_pairs"] == len(RULE_CASES)
    assert metrics["logprob_margin_after"] > metrics["logprob_margin_before"]
    assert len(metrics["loss"]) == 3
    lineage = json.loads((Path(result.path) / "charter-lineage.json").read_text(encoding="utf-8"))
    assert lineage["preference_set"] == trained["set_id"] and lineage["kind"] == "dpo"
    assert lineage["pairs_by_source"] == {"rule": len(RULE_CASES)}
    assert lineage["constitution_ids"] == [load_constitution(CONSTITUTION).constitution_id]
    assert Path(lineage["model_path"], "config.json").is_file()  # the merged model any backend loads

    printed = run_charter("lineage", result.path)
    assert printed.returncode == 0 and trained["set_id"] in printed.stdout


def test_training_the_same_thing_again_reuses_the_checkpoint(trained: dict) -> None:
    from flows.train import train_dpo

    again = train_dpo(store=str(trained["store"].root), settings=trained["settings"])
    assert again.reused is True and again.path == trained["dpo"].path
    assert again.run_id == trained["dpo"].run_id  # the lineage of the run that trained it


def test_reward_model_flow_trains_scores_and_refuses_a_missing_set(trained: dict, tmp_path: Path) -> None:
    from flows.train import train_reward

    store: Store = trained["store"]
    config = RewardModelSettings(epochs=3, batch_size=2, learning_rate=1e-4, eval_fraction=0.0)
    result = train_reward(store=str(store.root), config=config)
    assert result.metrics["train_pairs"] == len(RULE_CASES)
    assert result.lineage["pairs_by_source"] == {"rule": 4}
    _, question, good, bad = RULE_CASES[0]
    scored = run_charter("score", "--reward-model", result.path, "--prompt", question, good, bad)
    assert scored.returncode == 0, scored.stderr
    lines = [line for line in scored.stdout.splitlines() if good[:20] in line or bad[:20] in line]
    assert len(lines) == 2

    empty = Store.create(tmp_path / "empty")
    refused = run_charter("train", "reward", "--store", str(empty.root))
    assert refused.returncode == 1 and "no preference sets in the store" in refused.stderr


def test_scoreboard_compares_tuned_and_base_on_held_out_prompts(trained: dict) -> None:
    from flows.train import evaluate_policy

    result = evaluate_policy(
        store=str(trained["store"].root),
        checkpoint=trained["dpo"].path,
        constitution=str(CONSTITUTION),
        prompts="rules",
        settings=EvaluateSettings(per_family=1, max_tokens=24),
    )
    report = result.scoreboard
    assert result.prompts == report["prompts"] == len(HELD_OUT)  # only prompts no training pair used
    families = {(row["model"], row["family"]): row for row in report["families"]}
    assert families[("base", "(all)")]["kl_to_reference"] == 0.0
    assert families[("tuned", "(all)")]["responses"] == len(HELD_OUT)
    assert families[("tuned", "urgent-symptoms")]["escalation_rate"] in (0.0, 1.0)
    judged = [row for row in report["win_rates"] if row["judge"] == "ai judge" and row["family"] == "(all)"]
    assert judged and judged[0]["prompts"] == len(HELD_OUT)
    assert Path(trained["dpo"].path, "scoreboard.json").is_file()
