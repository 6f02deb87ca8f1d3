"""The scoreboard's evaluation on real models: held-out prompts, the configured judge, both backends.

The checkpoints here are hand-written lineages over real model folders (the embedded SmolLM2
as the base, its first two decoder layers saved as the "tuned" model), so no training runs.
"""

from __future__ import annotations

import importlib.util
import json

import pytest

from tasks.backends.settings import BackendSettings
from tasks.evaluate.evaluation import EvaluationSettings, evaluate_checkpoint, training_prompt_ids
from tests.train.preference_store import CONSTITUTION
from tests.train.test_logprobs import COMPLETIONS, PROMPTS

pytestmark = pytest.mark.integration


def settings(**overrides) -> EvaluationSettings:
    return EvaluationSettings(
        constitution_path=str(CONSTITUTION), prompt_set="rules", per_family=1, max_tokens=8, **overrides
    )


def test_held_out_prompts_leave_out_ppo_rollouts_and_never_borrow_the_latest_set(rules_only_ppo) -> None:
    # It used to exclude the store's latest (unrelated) set's prompts and keep the rollout ones.
    store, checkpoint, lineage, families = rules_only_ppo
    assert training_prompt_ids(store, lineage) == set(lineage["rollout_prompt_ids"])
    report = evaluate_checkpoint(store, checkpoint, settings(judge=False))
    evaluated = {row["prompt_id"] for row in report["responses"]}
    assert {families[p] for p in evaluated} == {"medication", "insurance-billing"}
    assert report["prompts"] == 2 and report["judge"] is None


def test_the_configured_judge_judges_and_the_base_serves_when_it_is_the_judge(
    rules_only_ppo, two_layer_model: str, embedded_model
) -> None:
    # It used to judge with the base model whatever judge was configured.
    store, checkpoint, _, _ = rules_only_ppo
    other = evaluate_checkpoint(
        store, checkpoint, settings(judge_model=BackendSettings(kind="hf", model=two_layer_model))
    )
    assert other["judge"]["model"] != embedded_model.model_id and other["judge"]["backend"] == "hf"
    judged = [row for row in other["win_rates"] if row["judge"] == "ai judge" and row["family"] == "(all)"]
    assert judged and judged[0]["prompts"] == 2

    # The default judge (auto backend, embedded model) is the base: its loaded copy judges.
    default = evaluate_checkpoint(store, checkpoint, settings())
    assert default["judge"] == {"model": embedded_model.model_id, "backend": "hf"}
    tuned = [row for row in default["responses"] if row["model"] == "tuned"]
    assert all(row["kl"] != 0.0 for row in tuned)  # two layers against thirty: far apart
    saved = json.loads((checkpoint / "scoreboard.json").read_text(encoding="utf-8"))
    assert saved["settings"]["judge_model"] == BackendSettings().model_dump()


vllm_only = pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vLLM is not installed")


@pytest.fixture(scope="module")
def vllm_backend(embedded_model):
    from tasks.backends.vllm_backend import VLLMBackend

    backend = VLLMBackend(embedded_model, max_model_len=2048)
    yield backend
    backend.close()


@vllm_only
def test_vllm_sequence_logprobs_agree_with_transformers(vllm_backend, hf_backend) -> None:
    expected = hf_backend.sequence_logprobs(PROMPTS, COMPLETIONS)
    assert vllm_backend.sequence_logprobs(PROMPTS, COMPLETIONS) == pytest.approx(expected, abs=2e-3)
    assert len(set(round(x, 2) for x in expected)) == 3 and all(x < 0 for x in expected)


@vllm_only
def test_evaluation_samples_and_scores_through_vllm(rules_only_ppo) -> None:
    """Tuned and base each get their own engine in turn; the KL estimate reads vLLM's prompt logprobs."""
    store, checkpoint, _, _ = rules_only_ppo
    report = evaluate_checkpoint(
        store, checkpoint, settings(judge=False, policy_backend=BackendSettings(kind="vllm"))
    )
    tuned = [row for row in report["responses"] if row["model"] == "tuned"]
    assert len(tuned) == 2 and all(row["response"] for row in tuned)
    assert all(row["kl"] != 0.0 for row in tuned)


def test_policy_backend_must_be_local_and_name_no_model() -> None:
    with pytest.raises(ValueError, match="vllm, hf or auto, with no model"):
        settings(policy_backend=BackendSettings(kind="openai"))
    with pytest.raises(ValueError, match="vllm, hf or auto, with no model"):
        settings(policy_backend=BackendSettings(kind="hf", model="some/model"))
