"""The generate and label flows on a local Ray instance give the rows the local runner gives."""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from tasks.backends import loading
from tasks.backends.registry import close_backends
from tasks.backends.settings import BackendSettings, concrete
from tasks.core.errors import CharterError
from tasks.generate.settings import GenerateSettings
from tasks.orchestration.runners import RunnerSettings, check_api_reachable, runner_session, runner_spec
from tasks.store.store import Store
from tests.conftest import PROJECT_ROOT, run_charter

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        importlib.util.find_spec("prefect_ray") is None, reason="the ray extra is not installed"
    ),
]

PROMPTS = PROJECT_ROOT / "datasets" / "healthcare-scheduling" / "prompts.jsonl"
CONSTITUTION = PROJECT_ROOT / "constitutions" / "healthcare-scheduling.yaml"
# Two engines (the local one, then the actor) on a shared 2-core machine: 1 GiB of KV cache
# each is plenty for these prompts.
ENGINE_ENVIRONMENT = {"VLLM_CPU_KVCACHE_SPACE": "1"}
# A private instance ("local": never a cluster someone else started on this machine).
RAY = RunnerSettings(kind="ray", address="local", init_kwargs={"num_cpus": 2, "include_dashboard": False})


@pytest.fixture(scope="module")
def ray_session() -> Iterator[RunnerSettings]:
    """One Ray instance for the module, held as a pipeline holds it across its stages.

    The flows join it rather than starting their own, so the engine the generate flow starts
    serves the label flow too. Ray's workers inherit this process's environment when it starts.
    """
    import ray

    saved = {key: os.environ.get(key) for key in ENGINE_ENVIRONMENT}
    os.environ.update(ENGINE_ENVIRONMENT)
    try:
        with runner_session(RAY):
            yield RAY
        assert not ray.is_initialized()  # the session started Ray, so it stopped it
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _generate_then_label(store: Path, backend: BackendSettings, runner: RunnerSettings | None) -> list[Any]:
    """4 prompts x 2 samples in 2 batches, then their 4 pairs judged in 2 batches (and by rules)."""
    from flows.generate import generate
    from flows.label import label

    common = {"store": str(store), "backend": backend, "limit": 4, "runner": runner}
    sampling = GenerateSettings(n=2, max_tokens=8, seed=5, batch_size=2)
    generated = generate(prompts=str(PROMPTS), settings=sampling, **common)
    labelled = label(constitution=str(CONSTITUTION), prompts="healthcare-scheduling", batch_size=2, **common)
    return [generated, labelled]


def _without_run_ids(results: list[Any]) -> list[dict[str, Any]]:
    return [{key: value for key, value in asdict(result).items() if key != "run_id"} for result in results]


def _rows(store: Path, table: str, key: str, columns: list[str]) -> dict[str, dict[str, Any]]:
    return {row[key]: row for row in Store(store).read(table, [key, *columns]).to_pylist()}


def _run_records(store: Path) -> list[tuple[str, ...]]:
    """What each run recorded, without what differs between any two runs (ids, times)."""
    rows = Store(store).read("runs").to_pylist()
    fields = ("flow", "status", "parameters", "constitution_ids", "input_hashes", "rows_added")
    return sorted(tuple(json.dumps(row[field], sort_keys=True) for field in fields) for row in rows)


def _engines() -> list[str]:
    import ray

    return [name for name in ray.util.list_named_actors() if name.startswith("charter-engine-")]


def test_ray_runner_gives_the_local_runners_rows_with_the_model_in_an_engine_actor(
    ray_session: RunnerSettings, tmp_path: Path
) -> None:
    import ray

    # The default backend: vLLM where it is installed (an engine in a Ray actor), else transformers.
    backend = concrete(BackendSettings())
    local = _generate_then_label(tmp_path / "local", backend, None)
    close_backends()  # the local engine's memory goes back before the actor's engine starts

    on_ray = _generate_then_label(tmp_path / "ray", backend, ray_session)
    # The batches ran on Ray: this process loaded no model, and the engine actors (one per GPU,
    # or one CPU engine) served both flows.
    assert not loading._OPEN
    assert len(_engines()) == max(1, int(ray.cluster_resources().get("GPU", 0)))

    assert _without_run_ids(on_ray) == _without_run_ids(local)
    assert on_ray[0].added("generations") == 8 and on_ray[0].batches == 2
    generations = ["prompt_id", "sample_index", "text", "num_tokens", "finish_reason", "model", "backend"]
    expected = _rows(tmp_path / "local", "generations", "generation_id", generations)
    assert len(expected) == 8 and {row["backend"] for row in expected.values()} == {backend.kind}
    assert _rows(tmp_path / "ray", "generations", "generation_id", generations) == expected

    labels = ["pair_id", "method", "principle_id", "choice", "rule_id", "judge_model"]
    columns = [*labels, "p_a_first", "p_a_second"]
    expected_labels = _rows(tmp_path / "local", "ai_labels", "label_id", columns)
    ray_labels = _rows(tmp_path / "ray", "ai_labels", "label_id", columns)
    assert [row["method"] for row in expected_labels.values()].count("logprob") == 4  # a pair a prompt
    assert ray_labels.keys() == expected_labels.keys()
    for label_id, row in ray_labels.items():
        reference = expected_labels[label_id]
        assert {k: row[k] for k in labels} == {k: reference[k] for k in labels}
        for probability in ("p_a_first", "p_a_second"):  # the same forward pass, in another process
            assert row[probability] == pytest.approx(reference[probability], abs=1e-6)

    assert _run_records(tmp_path / "ray") == _run_records(tmp_path / "local")

    close_backends()  # releases the job's engines too
    assert not _engines()
    # Resumed with everything stored: no batch to run, so no engine starts either.
    again = _generate_then_label(tmp_path / "ray", backend, ray_session)
    assert [result.batches_skipped for result in again] == [2, 2]
    assert not _engines()


def test_runner_choices_are_checked_before_any_work(monkeypatch: pytest.MonkeyPatch) -> None:
    assert runner_spec("local") == RunnerSettings()
    assert runner_spec("ray", "auto") == RunnerSettings(kind="ray", address="auto")
    with pytest.raises(CharterError, match="unknown --runner 'dask'"):
        runner_spec("dask")
    with pytest.raises(CharterError, match="--ray-address needs --runner ray"):
        runner_spec("local", "ray://head:10001")
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    with pytest.raises(CharterError, match="set PREFECT_API_URL to a Prefect server"):
        runner_spec("ray", "ray://head:10001")
    remote = RunnerSettings(kind="ray", address="ray://head:10001")
    with pytest.raises(CharterError, match="remote cluster"):
        check_api_reachable(remote, "http://127.0.0.1:4200/api")
    check_api_reachable(remote, "http://prefect.internal:4200/api")
    check_api_reachable(RunnerSettings(kind="ray"), "http://127.0.0.1:4200/api")  # a local Ray reaches it


@pytest.mark.parametrize("command", ["generate", "label"])
def test_cli_refuses_a_ray_client_cluster_without_a_reachable_prefect_api(
    command: str, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    needed = {
        "generate": ["--prompts", str(PROMPTS)],
        "label": ["--prompts", "healthcare-scheduling", "--constitution", str(CONSTITUTION)],
    }[command]
    ray_client = ["--runner", "ray", "--ray-address", "ray://head:10001"]
    result = run_charter(command, *needed, "--backend", "hf", *ray_client, "--store", str(store))
    assert result.returncode == 1
    assert "set PREFECT_API_URL to a Prefect server" in result.stderr and "Traceback" not in result.stderr
    assert not store.exists()
