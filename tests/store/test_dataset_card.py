"""The dataset card of an exported preference set: its figures, and a Hub-layout export that loads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tasks.store.dataset_card import dataset_card, set_facts
from tests.conftest import PROJECT_ROOT, run_charter

CONSTITUTION = PROJECT_ROOT / "constitutions" / "healthcare-scheduling.yaml"


def _row(decided_by: str, family: str | None, humans: int, agreement, ai_p, target=1.0, weight=1.0) -> dict:
    return {
        "decided_by": decided_by,
        "family": family,
        "human_labels": humans,
        "human_agreement": agreement,
        "ai_p_chosen": ai_p,
        "target": target,
        "weight": weight,
        "constitution_ids": ["c1"],
        "principle_ids": ["p2", "p1"] if humans else ["p1"],
    }


SET_ROW = {"set_id": "abc123" * 10, "policy": '{"tie": "drop"}', "counts": '{"kept": {"ai": 2}}'}
ROWS = [
    _row("human", "booking", 3, 2 / 3, 0.8, target=0.9),
    _row("human-majority", "booking", 2, 1.0, 0.3, target=0.7, weight=0.5),
    _row("human", "urgent|symptoms", 1, 1.0, None),  # people only: no AI vote to compare
    _row("ai", None, 0, None, 0.6, target=0.6),
]


def test_the_facts_are_counted_from_the_rows() -> None:
    facts = set_facts(SET_ROW, ROWS)
    assert facts["rows"] == 4
    assert facts["rows_by_source"] == {"ai": 1, "human": 2, "human-majority": 1}
    assert facts["families"] == {"(none)": 1, "booking": 2, "urgent|symptoms": 1}
    assert facts["mean_target"] == round((0.9 + 0.7 + 1.0 + 0.6) / 4, 4)
    assert facts["mean_weight"] == round(3.5 / 4, 4)
    assert facts["rows_with_human_labels"] == 3
    assert facts["mean_human_agreement"] == round((2 / 3 + 1 + 1) / 3, 4)
    # Two rows have both: the AI put the chosen first on one (0.8) and not on the other (0.3).
    assert facts["rows_with_human_and_ai_labels"] == 2
    assert facts["ai_agrees_with_human_decision"] == 0.5
    assert facts["principle_ids"] == ["p1", "p2"]
    assert facts["merge_policy"] == {"tie": "drop"} and facts["merge_counts"] == {"kept": {"ai": 2}}


def test_a_family_name_cannot_break_the_card_table_and_the_front_matter_reads_back() -> None:
    card = dataset_card(set_facts(SET_ROW, ROWS), "hub", "data/train.jsonl", "conversational")
    assert "| urgent\\|symptoms | 1 |" in card
    front = yaml.safe_load(card.split("---\n")[1])
    assert front["charter"]["set_id"] == SET_ROW["set_id"]
    assert front["configs"][0]["data_files"][0]["path"] == "data/train.jsonl"
    assert front["size_categories"] == ["n<1K"]


@pytest.mark.integration
def test_a_hub_export_loads_with_datasets_and_its_card_names_the_set(tmp_path: Path) -> None:
    from huggingface_hub import DatasetCard

    from datasets import load_dataset
    from flows.merge import merge
    from tasks.constitution.model import load_constitution
    from tasks.label.judge import rule_labels
    from tasks.label.pairs import PairSettings, plan_pairs
    from tests.rule_cases import RULE_CASES, store_with_rule_cases

    store = store_with_rule_cases(tmp_path / "store")
    plan = plan_pairs(store, {"prompt_set": "rules"}, PairSettings())
    store.append("ai_labels", rule_labels(plan.pairs, load_constitution(CONSTITUTION)), "setup")
    merged = merge(store=str(store.root))
    folder = tmp_path / "export"
    result = run_charter(
        "export", "preferences", "--format", "hub", "--store", str(store.root), "-o", str(folder)
    )
    assert result.returncode == 0, result.stderr

    train = load_dataset(str(folder), split="train")
    assert len(train) == len(RULE_CASES) and set(train["set_id"]) == {merged.set_id}
    card = DatasetCard.load(folder / "README.md")
    assert card.data.to_dict()["charter"]["set_id"] == merged.set_id
    assert card.data.to_dict()["charter"]["rows_by_source"] == {"rule": len(RULE_CASES)}
    assert f"# charter preference set {merged.set_id[:12]}" in card.text

    beside = tmp_path / "prefs.jsonl"
    result = run_charter("export", "preferences", "--store", str(store.root), "-o", str(beside))
    assert result.returncode == 0, result.stderr
    sidecar = tmp_path / "prefs.README.md"
    assert json.loads(beside.read_text(encoding="utf-8").splitlines()[0])["set_id"] == merged.set_id
    assert (
        yaml.safe_load(sidecar.read_text(encoding="utf-8").split("---\n")[1])["configs"][0]["data_files"][0][
            "path"
        ]
        == "prefs.jsonl"
    )
