"""GRPO through TRL on a constitution rule: settings, reward inputs, and one real run end to end.

The run (``charter train grpo``, once per module) trains SmolLM2's first two decoder layers (the
model of ``test_ppo.py``) on the 16 shortest booking and rescheduling prompts, rewarded per rule by
the healthcare constitution. The rule that moves is ``helpful-not-overcautious/no-disclaimer-bloat``
(3 to 220 words): with 4 new tokens the base model's replies reach 3 words about half the time
(34 of 64 sampled, temperature 1), so GRPO has a base rate to climb from; the other rules that
apply to these prompts are kept by its garbage text from the start, so their reward stays 0.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tasks.constitution.model import load_constitution
from tasks.core.errors import CharterError
from tasks.generate.generation import PromptItem
from tasks.ingest.prompt_sets import prompt_record
from tasks.store.store import Store
from tasks.train.settings import GRPOSettings
from tests.conftest import PROJECT_ROOT, run_charter
from tests.train.test_ppo import PROMPTS, scheduling_prompts

CONSTITUTION = PROJECT_ROOT / "constitutions" / "healthcare-scheduling.yaml"
MOVING_RULE = "rule/helpful-not-overcautious/no-disclaimer-bloat"
# Learning rate and steps from the runs measured below (fixture docstring).
RUN = {"steps": 6, "batch_size": 4, "num_generations": 4, "max_new_tokens": 4, "learning_rate": 5e-3}


def test_settings_refuse_impossible_combinations() -> None:
    with pytest.raises(ValueError, match="aggregates a reward model's members"):
        GRPOSettings(reward_aggregation="min")
    GRPOSettings(rewards="both", reward_aggregation="uwo")
    with pytest.raises(ValueError, match="every weight of the both reward is 0"):
        GRPOSettings(rewards="both", rules_weight=0, reward_model_weight=0)
    with pytest.raises(ValueError, match="is GRPO's"):
        GRPOSettings(algorithm="rloo", loss_type="grpo")
    with pytest.raises(ValueError, match="greater than or equal to 2"):
        GRPOSettings(num_generations=1)
    with pytest.raises(ValueError, match="luspo"):
        GRPOSettings(loss_type="luspo")
    assert GRPOSettings().beta > 0  # a KL to the base by default, unlike TRL's 0


def test_the_inputs_the_rewards_name_are_required_and_no_others() -> None:
    GRPOSettings().check_reward_inputs(None, "rules.yaml")
    GRPOSettings(rewards="both").check_reward_inputs("rm", "rules.yaml")
    with pytest.raises(CharterError, match="--rewards rules needs --rules"):
        GRPOSettings().check_reward_inputs(None, None)
    with pytest.raises(CharterError, match="--rewards both needs --reward-model"):
        GRPOSettings(rewards="both").check_reward_inputs(None, "rules.yaml")
    with pytest.raises(CharterError, match="--rules is given, but --rewards reward_model does not use it"):
        GRPOSettings(rewards="reward_model").check_reward_inputs("rm", "rules.yaml")


def test_per_rule_rewards_are_the_rules_that_apply_and_none_is_an_error() -> None:
    from tasks.train.grpo import grpo_rewards

    constitution = load_constitution(CONSTITUTION)
    booking = PromptItem("p1", "booking", ({"role": "user", "content": "Can I book Friday?"},))
    names = [r.name for r in grpo_rewards(GRPOSettings(), constitution, [booking], None)]
    assert MOVING_RULE in names and "rule/no-diagnosis/no-diagnostic-phrasing" not in names
    aggregate = grpo_rewards(
        GRPOSettings(rule_rewards="aggregate", rules_weight=2), constitution, [booking], None
    )
    assert [(r.name, r.weight) for r in aggregate] == [("rules", 2.0)]
    # Every principle of the constitution is tagged but urgent-escalation, whose rules all have a
    # trigger: an untagged prompt that triggers none has no rule to reward.
    untagged = PromptItem("p2", None, ({"role": "user", "content": "hello"},))
    with pytest.raises(CharterError, match="no rule of constitution healthcare-scheduling applies"):
        grpo_rewards(GRPOSettings(), constitution, [untagged], None)


@pytest.mark.integration
def test_cli_refuses_a_missing_reward_input_before_training(tmp_path: Path) -> None:
    # Refused before Prefect starts, so no server is needed (the address answers nothing).
    nowhere = {"PREFECT_API_URL": "http://127.0.0.1:9/api"}
    done = run_charter("train", "grpo", "--prompts", "p", "--rewards", "both", "--rules", str(CONSTITUTION),
                       "--store", str(tmp_path / "store"), env=nowhere)  # fmt: skip
    assert done.returncode == 1 and "--rewards both needs --reward-model" in done.stderr


@pytest.fixture(scope="module")
def trained(embedded_model, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """``charter train grpo`` on a store's prompt set with the two-layer model, one torch thread.

    Measured with ``RUN`` (``grpo_train`` in-process, seeds 0-4, 42-92 s each under a load of 6-9 on
    2 cores; the CPU matmuls are not bit-reproducible across processes, so each run is a fresh draw):
    the moving rule's mean reward was -0.44 or -0.75 at step 1 and -0.19 to 0.0 at step 6; the mean
    of the last two steps beat the first two's by 0.31-0.53 (mean 0.37, sd 0.08); the per-token KL
    peaked at 0.15-0.81. The run (a ``charter`` subprocess) took 41 s at a load of 1.5, 94 s at 6-9.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    root = tmp_path_factory.mktemp("grpo")
    store = Store.create(root / "store")
    rows = [json.loads(line) for line in PROMPTS.read_text(encoding="utf-8").splitlines()]
    family = {row["text"]: row["family"] for row in rows}
    records = [
        prompt_record(messages, "grpo", family[messages[-1]["content"]]).row()
        for messages in scheduling_prompts()
    ]
    store.append("prompts", records, "setup")
    model = root / "two-layers"
    AutoModelForCausalLM.from_pretrained(
        embedded_model.path, num_hidden_layers=2, dtype=torch.float32
    ).save_pretrained(model)
    AutoTokenizer.from_pretrained(embedded_model.path).save_pretrained(model)
    options = [f"--{key.replace('_', '-')}={value}" for key, value in RUN.items()]
    done = run_charter(
        "train", "grpo", "--prompts", "grpo", "--rules", str(CONSTITUTION), "--model", str(model),
        *options, "--report-to", "tensorboard", "--store", str(store.root),
        env={"OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    checkpoint = next((store.root / "checkpoints").glob("grpo-*"))
    lineage = json.loads((checkpoint / "charter-lineage.json").read_text(encoding="utf-8"))
    return {"store": store, "stdout": done.stdout, "checkpoint": checkpoint, "lineage": lineage}


@pytest.mark.integration
def test_grpo_raises_the_rule_reward_with_bounded_kl(trained: dict) -> None:
    steps = trained["lineage"]["metrics"]["steps"]
    assert [s["step"] for s in steps] == list(range(1, RUN["steps"] + 1))
    rule = [s[f"rewards/{MOVING_RULE}/mean"] for s in steps]
    first, last = sum(rule[:2]) / 2, sum(rule[-2:]) / 2
    assert last - first >= 0.15, rule  # 0.31-0.53 measured: over 2.5 sd below their mean
    # The total is the rules' sum (weights 1), and the rules that were never broken stay at 0.
    names = trained["lineage"]["metrics"]["reward_functions"]
    for s in steps:
        assert s["reward"] == pytest.approx(sum(s[f"rewards/{n}/mean"] for n in names), abs=1e-6)
    assert all(s[f"rewards/{n}/mean"] == 0 for s in steps for n in names if n != MOVING_RULE)
    kls = [s["kl"] for s in steps]
    assert kls[0] == pytest.approx(0.0, abs=1e-6)  # the first step samples the base itself
    assert max(kls) < 2.0, kls  # nats per token; the base's entropy is ~1.2


@pytest.mark.integration
def test_grpo_checkpoint_has_lineage_model_logs_and_its_rollouts_are_not_held_out(trained: dict) -> None:
    from tasks.evaluate.evaluation import training_prompt_ids
    from tasks.generate.generation import select_prompts

    lineage, checkpoint, store = trained["lineage"], trained["checkpoint"], trained["store"]
    assert lineage["kind"] == "grpo" and lineage["algorithm"] == "grpo"
    assert lineage["rules_constitution_id"] == load_constitution(CONSTITUTION).constitution_id
    assert Path(lineage["model_path"], "config.json").is_file()
    assert list((checkpoint / "logs").glob("events.out.tfevents.*"))
    prompt_ids = {p.prompt_id for p in select_prompts(store, "grpo")}
    rolled_out = set(lineage["rollout_prompt_ids"])
    assert rolled_out == prompt_ids  # 6 steps x 4 prompts visit all 16 (the schedule wraps around)
    assert training_prompt_ids(store, lineage) == rolled_out
    assert f"{MOVING_RULE}:" in trained["stdout"] and "GRPO policy" in trained["stdout"]


@pytest.mark.integration
def test_report_plots_the_reward_kl_and_each_reward_function(trained: dict) -> None:
    from types import SimpleNamespace

    from tasks.report.blocks import Figure, Table
    from tasks.report.data import Checkpoint
    from tasks.report.training_sections import policy_headline, policy_section

    policy = Checkpoint(trained["checkpoint"], trained["lineage"])
    section = policy_section(SimpleNamespace(policy=policy))
    assert section.title == "Policy training (GRPO)"
    plots = {block.plot_id for block in section.blocks if isinstance(block, Figure)}
    assert plots == {"grpo-reward", "grpo-reward-functions", "grpo-kl"}
    curves = next(b for b in section.blocks if isinstance(b, Table) and b.caption == "Training curves")
    rows = {row[0]: row for row in curves.rows}
    steps = trained["lineage"]["metrics"]["steps"]
    assert rows[MOVING_RULE][1:4] == (
        RUN["steps"],
        steps[0][f"rewards/{MOVING_RULE}/mean"],
        steps[-1][f"rewards/{MOVING_RULE}/mean"],
    )
    assert rows["KL to reference (per token)"][3] == steps[-1]["kl"]
    headline = dict(policy_headline(policy))
    assert headline["final GRPO mean reward"] == steps[-1]["reward"]


@pytest.mark.integration
def test_rloo_takes_the_same_rewards_and_logs_the_same_names(embedded_model, tmp_path: Path) -> None:
    """``--algorithm rloo``: TRL's RLOOTrainer on the same reward functions (2 steps, no claim on
    learning): each step logs the total, the KL and each function's mean under TRL's names."""
    import torch
    from transformers import AutoTokenizer

    from tasks.core.conversation import prompt_id
    from tasks.train.grpo import grpo_rewards, grpo_train
    from tests.train.test_ppo import load_two_layers

    conversations = scheduling_prompts(4)
    prompts = [PromptItem(prompt_id(c), "booking", tuple(c)) for c in conversations]
    settings = GRPOSettings(**{**RUN, "steps": 2, "batch_size": 2, "num_generations": 2}, algorithm="rloo")
    rewards = grpo_rewards(settings, load_constitution(CONSTITUTION), prompts, None)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model, steps = grpo_train(
            load_two_layers(embedded_model.path),
            AutoTokenizer.from_pretrained(embedded_model.path),
            conversations,
            rewards,
            settings,
            tmp_path / "rloo",
        )
    finally:
        torch.set_num_threads(threads)
    assert [s["step"] for s in steps] == [1, 2]
    for s in steps:
        assert {"reward", "kl", *(f"rewards/{r.name}/mean" for r in rewards)} <= set(s)
        assert -1.0 <= s[f"rewards/{MOVING_RULE}/mean"] <= 0.0
    assert not hasattr(model, "peft_config")  # the LoRA adapter is merged into the returned model
