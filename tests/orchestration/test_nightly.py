"""The bundled ``nightly-data`` deployment's selection, served on a real ``prefect server start``:
scheduled runs in a row take disjoint prompts, each run's report and ``runs`` row count only its
own rows, and a run that finds the prompt set exhausted says so and succeeds doing nothing.
``charter generate --select unseen`` does the same as a single-stage command."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tasks.backends.base import SamplingSettings
from tasks.generate.generation import generation_id, select_prompts
from tasks.generate.selection import GenerationIdentity
from tasks.ingest.prompt_sets import load_prompt_set
from tasks.store.sql import run_query
from tasks.store.store import Store
from tests.conftest import PROJECT_ROOT, run_charter
from tests.prefect_servers import group_alive, registered_deployment, schedule_env, stop, tail
from tests.prefect_servers import prefect_server as real_prefect_server

pytestmark = pytest.mark.integration

BUNDLED = PROJECT_ROOT / "datasets" / "healthcare-scheduling"
NIGHTS = 2  # the prompt file holds two nights' worth of prompts
LIMIT = 2
# The cheapest settings that still run every data stage with the embedded model.
CONFIG = f"""
constitution: {PROJECT_ROOT / "constitutions" / "healthcare-scheduling.yaml"}
prompts:
  file: prompts.jsonl
  limit: {LIMIT}
policy_model:
  backend: hf
generate: {{n: 2, max_tokens: 8, batch_size: 2}}
critique: {{batch_size: 4, critique_tokens: 8, revision_tokens: 8}}
label:
  pairs: [all]
  per_prompt: 1
merge:
  policy:
    ai_min_margin: 0.0
    ai_require_consistent: false
"""


def nightly_parameters() -> dict[str, Any]:
    """The bundled nightly-data deployment's parameters (prefect.yaml), its config left out."""
    raw = yaml.safe_load((PROJECT_ROOT / "prefect.yaml").read_text(encoding="utf-8"))
    [nightly] = [d for d in raw["deployments"] if d["name"] == "nightly-data"]
    return {key: value for key, value in nightly["parameters"].items() if key != "config"}


@pytest.fixture
def prefect_server(tmp_path: Path) -> Iterator[str]:
    with real_prefect_server(tmp_path / "server-home") as url:
        yield url


@pytest.fixture
def nightly_config(tmp_path: Path) -> Path:
    """A config over a prompt set of ``NIGHTS * LIMIT`` prompts (of four families) of the bundled set."""
    folder = tmp_path / "nightly"
    folder.mkdir()
    lines = [line for line in (BUNDLED / "prompts.jsonl").read_text(encoding="utf-8").splitlines() if line]
    first_of_family: dict[str, str] = {}
    for line in lines:
        first_of_family.setdefault(json.loads(line)["family"], line)
    (folder / "prompts.jsonl").write_text("\n".join(list(first_of_family.values())[: NIGHTS * LIMIT]) + "\n")
    config = folder / "pipeline.yaml"
    config.write_text(f"store: {tmp_path / 'store'}\n{CONFIG}", encoding="utf-8")
    return config


def pipeline_runs(store: Store) -> list[dict[str, Any]]:
    """Each pipeline run's recorded selection and rows added (run_summary), oldest first."""
    rows = run_query(
        store,
        "select s.run_id, s.status, s.rows_added, r.parameters from run_summary s "
        "join runs r on r.run_id = s.run_id and r.status = 'started' "
        "where s.flow = 'pipeline' order by s.started_at",
    ).rows
    return [
        {
            "run_id": run_id,
            "status": status,
            "rows_added": json.loads(rows_added),
            "selection": json.loads(parameters)["selection"],
        }
        for run_id, status, rows_added, parameters in rows
    ]


def prompts_by_run(store: Store, table: str) -> dict[str, set[str]]:
    """For each run that wrote ``table`` rows (a stage subflow), the prompts of those rows."""
    found: dict[str, set[str]] = {}
    for prompt, run_id in run_query(store, f"select distinct prompt_id, run_id from {table}").rows:
        found.setdefault(run_id, set()).add(prompt)
    return found


def test_nightly_runs_take_disjoint_prompts_count_their_own_rows_and_stop_when_exhausted(
    prefect_server: str, nightly_config: Path, tmp_path: Path
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    parameters = nightly_parameters()
    assert parameters["selection"] == {"select": "unseen"}
    client_home = tmp_path / "client-home"
    client_home.mkdir()
    log_path = tmp_path / "charter.log"
    log = log_path.open("w")
    charter = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "charter"), "schedule", "--flow", "pipeline",
            "--name", "nightly-test", "--cron", "0 2 * * *",
            "--param", f"config={nightly_config}",
            *(arg for key, value in parameters.items() for arg in ("--param", f"{key}={json.dumps(value)}")),
        ],
        cwd=PROJECT_ROOT,
        env=schedule_env(prefect_server, client_home),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    try:
        with (
            temporary_settings(updates={PREFECT_API_URL: prefect_server}),
            get_client(sync_client=True) as client,
        ):
            registered_deployment(client, "pipeline/nightly-test", charter, log_path)
            flow_runs = []
            for _ in range(NIGHTS + 1):  # the last night finds the set exhausted
                flow_run = run_deployment(
                    "pipeline/nightly-test", timeout=300, poll_interval=1, as_subflow=False
                )
                assert flow_run.state and flow_run.state.is_completed(), (flow_run.state, tail(log_path, 60))
                flow_runs.append(str(flow_run.id))
    finally:
        stop(charter)
        log.close()
    assert charter.poll() is not None and not group_alive(charter.pid)

    store = Store(tmp_path / "store")
    runs = pipeline_runs(store)
    assert [run["run_id"] for run in runs] == flow_runs and {run["status"] for run in runs} == {"completed"}
    in_set_order = [item.prompt_id for item in select_prompts(store, "nightly")]
    nights = [list(run["selection"]["prompt_ids"]) for run in runs]
    assert nights == [in_set_order[:2], in_set_order[2:4], []]  # disjoint, in set order, then none

    generations = prompts_by_run(store, "generations")
    critiques = prompts_by_run(store, "critiques")
    labels = prompts_by_run(store, "ai_labels")
    assert sorted(map(sorted, generations.values())) == sorted(sorted(night) for night in nights[:2])
    for night in nights[:2]:  # critique and label worked on that night's generations only
        assert [p for p in critiques.values() if p & set(night)] == [set(night)]
        assert [p for p in labels.values() if p & set(night)] == [set(night)]

    second = runs[1]["rows_added"]
    own = [
        r for r in store.read("ai_labels", ["prompt_id", "method"]).to_pylist() if r["prompt_id"] in nights[1]
    ]
    assert second["generations"] == LIMIT * 2  # 2 prompts x n 2: none of the first night's 4
    assert second["critiques"] == LIMIT * 2  # one round per generation
    assert second["ai_labels"] == len(own)  # the judge's and the rules' labels of its own pairs
    assert sum(1 for r in own if r["method"] == "logprob") == LIMIT  # per_prompt 1: one pair a prompt
    report = (store.root / "reports" / runs[1]["run_id"] / "report.md").read_text(encoding="utf-8")
    assert f"generations: {LIMIT * 2} |" in report and f"ai_labels: {len(own)} |" in report

    last = runs[2]
    assert not {"generations", "critiques", "ai_labels"} & {t for t, n in last["rows_added"].items() if n}
    printed = log_path.read_text(encoding="utf-8")
    assert printed.count("prompt set nightly is exhausted: all 4 prompts are generated") == 1, printed[-3000:]
    last_report = (store.root / "reports" / last["run_id"] / "report.md").read_text(encoding="utf-8")
    assert last_report.count("no prompts selected: nothing to do") == 3  # generate, critique, label


def test_charter_generate_select_unseen_takes_what_is_left_then_says_the_set_is_exhausted(
    nightly_config: Path, tmp_path: Path, embedded_model: Any
) -> None:
    prompts = nightly_config.parent / "prompts.jsonl"
    store = Store.create(tmp_path / "store")
    records = load_prompt_set(prompts)
    store.append("prompts", [record.row() for record in records], "setup")
    sampling = SamplingSettings(n=2, max_tokens=8)
    identity = GenerationIdentity(embedded_model.model_id, "hf", sampling)
    done = [item.prompt_id for item in select_prompts(store, "nightly")][:3]
    store.append("generations", [fake_generation(p, identity, i) for p in done for i in range(2)], "setup")
    command = (
        "generate", "--prompts", str(prompts), "--store", str(store.root), "--backend", "hf",
        "-n", "2", "--max-tokens", "8", "--select", "unseen", "--limit", "2",
    )  # fmt: skip
    first = run_charter(*command)
    assert first.returncode == 0, first.stderr
    assert "select unseen: 1 of 4 prompts, the first of 1 not yet generated for model" in first.stdout
    assert "generations +2" in first.stdout
    [left] = set(p.prompt_id for p in select_prompts(store, "nightly")) - set(done)
    generated = store.read("generations", ["prompt_id", "run_id"]).to_pylist()
    assert sorted(r["prompt_id"] for r in generated if r["run_id"] != "setup") == [left, left]
    again = run_charter(*command)
    assert again.returncode == 0, again.stderr
    assert "prompt set nightly is exhausted: all 4 prompts are generated for model" in again.stdout
    assert "0 prompts, 0 batches" in again.stdout and "generations +0" in again.stdout
    recorded = run_query(
        store,
        "select parameters from runs where flow = 'generate' and status = 'completed' order by created_at",
    ).rows
    assert [json.loads(p)["selection"]["prompt_ids"] for (p,) in recorded] == [[left], []]


def fake_generation(prompt: str, identity: GenerationIdentity, index: int) -> dict[str, Any]:
    """A stored generation with the id the generate stage would give that prompt and sample."""
    sampling = identity.sampling
    return {
        "generation_id": generation_id(prompt, identity.model_id, identity.backend, sampling, index),
        "prompt_id": prompt,
        "model": identity.model_id,
        "backend": identity.backend,
        "params": json.dumps(sampling.as_dict(), sort_keys=True),
        "sample_index": index,
        "text": f"stored answer {index}",
        "finish_reason": "length",
        "num_tokens": 8,
    }
