"""Checkpoint folders: the friendly refusals before any model loads, and reuse only of the same training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tasks.core.errors import CharterError
from tasks.train.checkpoints import train_dpo_checkpoint, train_reward_checkpoint
from tasks.train.lineage import LINEAGE_FILE
from tasks.train.settings import DPOSettings, RewardModelSettings
from tests.train.preference_store import store_with_soft_set


@pytest.fixture
def soft_store(tmp_path: Path):
    """Four pairs, each with target 0.8: confidence 0.6."""
    return store_with_soft_set(tmp_path / "store", p_chosen=0.8)


def test_dpo_refuses_a_confidence_filter_that_keeps_no_row_before_loading_a_model(soft_store) -> None:
    # It used to load the model and then divide by zero measuring the margin on no pairs.
    store, set_id = soft_store
    settings = DPOSettings(min_confidence=0.9)
    with pytest.raises(CharterError, match=r"none of the 4 rows .* at least 0.9 \(--min-confidence\)"):
        # An unloadable model: any attempt to load it would fail with another error.
        train_dpo_checkpoint(store, "run", set_id, "nobody/no-such-model", settings, None)


def test_output_folder_that_holds_something_else_is_refused_before_training(
    soft_store, tmp_path: Path
) -> None:
    store, set_id = soft_store
    mine = tmp_path / "my-notes"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me", encoding="utf-8")
    with pytest.raises(
        CharterError, match=r"holds no charter checkpoint \(no charter-lineage.json\); not overwriting it"
    ):
        train_dpo_checkpoint(store, "run", set_id, "nobody/no-such-model", DPOSettings(), str(mine))
    assert (mine / "notes.txt").read_text(encoding="utf-8") == "keep me"

    reward = tmp_path / "reward"
    reward.mkdir()
    (reward / LINEAGE_FILE).write_text(json.dumps({"kind": "reward"}), encoding="utf-8")
    with pytest.raises(CharterError, match="holds a reward checkpoint; not replacing it with a dpo one"):
        train_dpo_checkpoint(store, "run", set_id, "nobody/no-such-model", DPOSettings(), str(reward))


@pytest.mark.integration
def test_output_folder_is_reused_only_for_the_same_settings(soft_store, tmp_path: Path) -> None:
    """``-o DIR`` used to return whatever checkpoint DIR held, whatever it was trained with."""
    store, set_id = soft_store
    output = str(tmp_path / "reward-model")
    one_epoch = RewardModelSettings(epochs=1, batch_size=2, eval_fraction=0.0)
    first = train_reward_checkpoint(store, "run-1", set_id, one_epoch, output)
    assert first["reused"] is False and first["metrics"]["steps"][-1]["epoch"] == 1

    two_epochs = one_epoch.model_copy(update={"epochs": 2})
    second = train_reward_checkpoint(store, "run-2", set_id, two_epochs, output)
    assert second["reused"] is False and second["run_id"] == "run-2"
    assert second["settings"]["epochs"] == 2 and second["metrics"]["steps"][-1]["epoch"] == 2
    on_disk = json.loads((Path(output) / LINEAGE_FILE).read_text(encoding="utf-8"))
    assert on_disk["run_id"] == "run-2" and on_disk["identity"]["settings"]["epochs"] == 2

    again = train_reward_checkpoint(store, "run-3", set_id, two_epochs, output)
    assert again["reused"] is True and again["run_id"] == "run-2"
    assert not list(tmp_path.glob(".reward-model.*"))  # no staging folder left beside it
