"""Checkpoints for the evaluation tests: hand-written lineages over real model folders (the embedded
SmolLM2 as the base, its first two decoder layers saved as the "tuned" model), so no training runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.generate.generation import select_prompts
from tasks.train.lineage import write_lineage
from tests.train.preference_store import store_with_soft_set


@pytest.fixture(scope="session")
def two_layer_model(embedded_model, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A model unlike the base (SmolLM2's first 2 of 30 layers) that loads like any model folder."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = tmp_path_factory.mktemp("two-layers") / "model"
    model = AutoModelForCausalLM.from_pretrained(
        embedded_model.path, num_hidden_layers=2, dtype=torch.float32
    )
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(embedded_model.path).save_pretrained(folder)
    return str(folder)


@pytest.fixture
def rules_only_ppo(tmp_path: Path, embedded_model, two_layer_model: str):
    """A store whose latest preference set covers the 4 "rules" prompts, and a PPO checkpoint
    trained on rules alone (no preference set) whose rollouts used the 2 urgent-symptoms prompts."""
    store, _ = store_with_soft_set(tmp_path / "store")
    prompts = select_prompts(store, "rules")
    rolled_out = sorted(p.prompt_id for p in prompts if p.family == "urgent-symptoms")
    checkpoint = tmp_path / "ppo"
    lineage = {
        "kind": "ppo",
        "preference_set": None,
        "prompt_set": "rules",
        "rollout_prompt_ids": rolled_out,
        "base_model": embedded_model.model_id,
        "base_model_path": embedded_model.path,
        "model_path": two_layer_model,
    }
    write_lineage(checkpoint, lineage)
    return store, checkpoint, lineage, {p.prompt_id: p.family for p in prompts}
