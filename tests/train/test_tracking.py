"""Per-step training metrics through ``report_to``: the tracker itself, and the TensorBoard logs that
tiny PPO, DPO and reward-model runs leave in their checkpoints' ``logs/`` folders."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from flows.cli.options import Options, settings_options
from tasks.core.errors import CharterError, InputError
from tasks.orchestration.pipeline_config import load_pipeline_config
from tasks.train.ensemble import reward_step_metrics
from tasks.train.ppo import trl_step_metrics
from tasks.train.settings import DPOSettings, PPOSettings, RewardModelSettings
from tasks.train.tracking import Tracker, check_report_to, tracked
from tests.orchestration import test_config_keys as config_keys
from tests.train.preference_store import CONSTITUTION, store_with_soft_set
from tests.train.test_ppo import load_two_layers, one_thread  # noqa: F401 (autouse: one torch thread)

# The bundled config written beside its inputs, which the per-key walk spoils one key of.
bundled_copy, bundled_data = config_keys.bundled_copy, config_keys.bundled_data


def scalars(log_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar series in the TensorBoard event files of ``log_dir``: tag -> [(step, value)]."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(log_dir))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def steps_and_values(series: list[tuple[int, float]]) -> tuple[list[int], list[float]]:
    return [step for step, _ in series], [value for _, value in series]


def test_no_report_to_logs_nothing_and_makes_no_folder(tmp_path: Path) -> None:
    with tracked((), tmp_path / "logs", "run") as tracker:
        tracker.log({"loss": 0.5}, 1)
    assert not (tmp_path / "logs").exists()


def test_tensorboard_gets_the_numbers_and_is_closed_even_when_training_fails(tmp_path: Path) -> None:
    with (
        pytest.raises(RuntimeError, match="out of memory"),
        tracked(("tensorboard",), tmp_path, "run") as tracker,
    ):
        tracker.log({"loss": 0.75, "rewards/margins": 2, "note": "text", "done": True, "none": None}, 1)
        tracker.log({"loss": 0.5}, 2)
        raise RuntimeError("out of memory")
    # Values that are not numbers (a string, a flag, None) are left out; ints become floats.
    assert scalars(tmp_path) == {"loss": [(1, 0.75), (2, 0.5)], "rewards/margins": [(1, 2.0)]}


def test_the_callback_relays_trainer_logs_under_their_own_names_at_the_global_step() -> None:
    from transformers import TrainerControl, TrainerState

    seen: list[tuple[dict, int]] = []
    callback = Tracker([lambda metrics, step: seen.append((metrics, step))]).callback()
    callback.on_log(None, TrainerState(global_step=3), TrainerControl(), logs={"rewards/margins": 0.25})
    callback.on_log(None, TrainerState(global_step=4), TrainerControl(), logs={})
    assert seen == [({"rewards/margins": 0.25}, 3)]


@pytest.mark.parametrize("package", ["mlflow", "wandb"])
def test_a_missing_integration_is_refused_naming_the_install_before_any_log_is_written(
    package: str, tmp_path: Path
) -> None:
    if importlib.util.find_spec(package) is not None:
        pytest.skip(f"{package} is installed here")
    with pytest.raises(CharterError, match=rf"report_to asks for {package}.*`pip install {package}`"):
        check_report_to(("tensorboard", package))
    with (
        pytest.raises(CharterError, match=f"pip install {package}"),
        tracked(("tensorboard", package), tmp_path / "logs", "r"),
    ):
        pass
    assert not (tmp_path / "logs").exists()


@pytest.mark.skipif(importlib.util.find_spec("mlflow") is not None, reason="mlflow is installed here")
def test_a_pipeline_config_asking_for_a_missing_integration_is_refused_at_load(
    bundled_copy: Path, bundled_data: dict
) -> None:
    path, line = config_keys._spoiled(bundled_copy, bundled_data, ("train", "ppo", "report_to"), ["mlflow"])
    with pytest.raises(InputError) as refused:
        load_pipeline_config(path)
    (problem,) = refused.value.problems
    assert (problem.field, problem.line) == ("train.ppo.report_to", line)
    assert "`pip install mlflow`" in problem.message


def test_report_to_is_a_repeatable_option_of_every_trainer() -> None:
    received: dict = {}
    tiny = typer.Typer()

    @tiny.command()
    @settings_options(settings=Options(DPOSettings, only=("report_to",)))
    def run(*, settings: DPOSettings) -> None:
        received["settings"] = settings

    given = ["--report-to", "tensorboard", "--report-to", "mlflow"]
    assert CliRunner().invoke(tiny, given, catch_exceptions=False).exit_code == 0
    assert received["settings"].report_to == ("tensorboard", "mlflow")
    assert CliRunner().invoke(tiny, [], catch_exceptions=False).exit_code == 0
    assert received["settings"].report_to == ()
    with pytest.raises(
        CharterError, match="unknown --report-to 'tensorbord'; choose from tensorboard, mlflow or wandb"
    ):
        CliRunner().invoke(tiny, ["--report-to", "tensorbord"], catch_exceptions=False)
    assert RewardModelSettings(report_to=["wandb"]).report_to == PPOSettings(report_to=["wandb"]).report_to


def test_step_metrics_carry_trls_names_and_an_ensembles_members_apart() -> None:
    ppo = {"step": 0, "kl": 0.5, "kl_coef": 0.2, "reward_mean": 1.0, "clip_fraction": 0.1, "rollout_s": 3.0}
    assert trl_step_metrics(ppo) == {
        "objective/kl": 0.5,
        "objective/kl_coef": 0.2,
        "objective/scores": 1.0,
        "policy/clipfrac_avg": 0.1,
        "rollout_s": 3.0,  # no TRL name: charter's
    }
    entry = {"epoch": 1, "step": 2, "pairs": 4, "loss": 0.6, "accuracy": 0.75, "member": 1}
    assert reward_step_metrics(entry, 1) == {"epoch": 1, "pairs": 4, "loss": 0.6, "accuracy": 0.75}
    assert reward_step_metrics(entry, 2) == {
        "member-1/epoch": 1,
        "member-1/pairs": 4,
        "member-1/loss": 0.6,
        "member-1/accuracy": 0.75,
    }


@pytest.fixture(scope="module")
def two_layer_model(embedded_model, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A model folder holding SmolLM2's first two decoder layers: a policy that trains in seconds."""
    from transformers import AutoTokenizer

    folder = tmp_path_factory.mktemp("models") / "smollm2-two-layers"
    load_two_layers(embedded_model.path).save_pretrained(folder)
    AutoTokenizer.from_pretrained(embedded_model.path).save_pretrained(folder)
    return str(folder)


@pytest.fixture
def soft_store(tmp_path: Path):
    return store_with_soft_set(tmp_path / "store")


@pytest.mark.integration
def test_a_ppo_run_logs_trls_step_metrics_to_tensorboard_in_its_checkpoint(
    two_layer_model: str, soft_store
) -> None:
    from tasks.train.checkpoints import train_ppo_checkpoint

    store, _ = soft_store
    config = PPOSettings(
        steps=3, batch_size=2, mini_batch_size=2, ppo_epochs=1, max_new_tokens=6, report_to=("tensorboard",)
    )
    result = train_ppo_checkpoint(
        store, "run", "rules", two_layer_model, config, None, str(CONSTITUTION), None
    )
    logged = scalars(Path(result["path"]) / "logs")
    steps = result["metrics"]["steps"]
    logged_steps, kls = steps_and_values(logged["objective/kl"])
    assert logged_steps == [1, 2, 3] and kls == pytest.approx([s["kl"] for s in steps], abs=1e-6)
    assert steps_and_values(logged["objective/scores"])[1] == pytest.approx([s["reward_mean"] for s in steps])
    assert {"objective/entropy", "loss/policy_avg", "policy/approxkl_avg", "rollout_s"} <= set(logged)


@pytest.mark.integration
def test_a_dpo_run_logs_trls_own_metrics_to_tensorboard_in_its_checkpoint(
    two_layer_model: str, soft_store
) -> None:
    from tasks.train.checkpoints import train_dpo_checkpoint

    store, set_id = soft_store
    settings = DPOSettings(steps=3, batch_size=2, max_length=128, margin_pairs=2, report_to=("tensorboard",))
    result = train_dpo_checkpoint(store, "run", set_id, two_layer_model, settings, None)
    logged = scalars(Path(result["path"]) / "logs")
    logged_steps, losses = steps_and_values(logged["loss"])
    assert logged_steps == [1, 2, 3] and losses == pytest.approx(result["metrics"]["loss"], abs=1e-6)
    assert steps_and_values(logged["rewards/margins"])[0] == [1, 2, 3]
    lineage = json.loads((Path(result["path"]) / "charter-lineage.json").read_text(encoding="utf-8"))
    assert lineage["settings"]["report_to"] == ["tensorboard"]


@pytest.mark.integration
def test_a_reward_model_run_logs_reward_trainer_metrics_in_its_checkpoint(soft_store) -> None:
    from tasks.train.checkpoints import train_reward_checkpoint

    store, set_id = soft_store
    config = RewardModelSettings(batch_size=2, eval_fraction=0.0, report_to=("tensorboard",))
    result = train_reward_checkpoint(store, "run", set_id, config, None)
    logged = scalars(Path(result["path"]) / "logs")
    steps = result["metrics"]["steps"]
    logged_steps, losses = steps_and_values(logged["loss"])
    assert logged_steps == [1, 2] and losses == pytest.approx(
        [s["loss"] for s in steps], abs=1e-6
    )  # 4 pairs, 2 a step
    assert steps_and_values(logged["accuracy"])[1] == pytest.approx([s["accuracy"] for s in steps])
    assert {"margin", "mean_reward", "learning_rate"} <= set(logged)
