"""`charter run` end to end, killed with SIGKILL in the middle of every stage and resumed.

One store runs the pipeline straight through; another is killed (the whole process group,
as an OOM killer or a lost machine would) mid-generate, mid-critique, mid-label, mid-merge
and mid-training, resuming each time. The resumed store must hold exactly the rows and
checkpoints of the uninterrupted one, with no duplicates, and each resume must skip the
batches that were already stored.

The straight run and the first killed run use Prefect's temporary server (``make demo``'s
way; the kill takes that server along with the group); the resumes talk to the session's
shared Prefect server, as a scheduled deployment's runs do.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tasks.store.schema import table_spec
from tasks.store.store import Store
from tests.conftest import PROJECT_ROOT, shared_prefect_api

pytestmark = pytest.mark.integration

BUNDLED = PROJECT_ROOT / "datasets" / "healthcare-scheduling"
TABLES = (
    "prompts",
    "generations",
    "critiques",
    "ai_labels",
    "human_labels",
    "preferences",
    "preference_sets",
)
# Three prompts, one sample batch each; small batches everywhere so every stage has several.
CONFIG = f"""
constitution: {PROJECT_ROOT / "constitutions" / "healthcare-scheduling.yaml"}
prompts:
  file: {BUNDLED / "prompts.jsonl"}
  limit: 3
human_labels:
  - path: {BUNDLED / "human-labels.jsonl"}
policy_model:
  backend: hf
generate: {{n: 2, max_tokens: 12, batch_size: 1}}
critique: {{batch_size: 2, critique_tokens: 12, revision_tokens: 16}}
label:
  pairs: [all]
  batch_size: 4
merge:
  policy:
    ai_min_margin: 0.0
    ai_require_consistent: false
train:
  algorithm: dpo
  sft: {{enabled: true, steps: 2, batch_size: 2, max_length: 128, loss_records: 2}}
  reward_model: {{epochs: 1, batch_size: 4, max_length: 96}}
  dpo: {{steps: 2, batch_size: 2, max_length: 128}}
evaluate: {{per_family: 1, max_tokens: 8, judge: false}}
"""


def _config(tmp_path: Path, store: Path) -> Path:
    path = tmp_path / f"{store.name}.yaml"
    path.write_text(f"store: {store}\n{CONFIG}", encoding="utf-8")
    return path


def _start(config: Path, server: dict[str, str] | None = None) -> subprocess.Popen:
    """``charter run`` in its own process group, so a kill takes its temporary Prefect server along.

    ``server``: the environment naming a running Prefect server's API (none: the temporary one).
    """
    return subprocess.Popen(
        [str(Path(sys.executable).parent / "charter"), "run", str(config)],
        cwd=PROJECT_ROOT,
        env={**os.environ, "COLUMNS": "200", "PYTHONUNBUFFERED": "1", **(server or {})},  # lines as logged
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _finish(process: subprocess.Popen, timeout: float = 900) -> str:
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        raise
    assert process.returncode == 0, output[-4000:]
    return output


def _kill_when(process: subprocess.Popen, condition: Callable[[], bool], what: str) -> str:
    """SIGKILL the run's process group as soon as ``condition`` holds; its output so far."""
    deadline = time.monotonic() + 600
    while not condition():
        if process.poll() is not None:
            pytest.fail(f"the run ended before {what}:\n{process.stdout.read()[-4000:]}")
        if time.monotonic() > deadline:
            os.killpg(process.pid, signal.SIGKILL)
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)
    return _kill(process)


def _kill(process: subprocess.Popen) -> str:
    """SIGKILL the run's process group (its Prefect server too); the output it had not read yet."""
    os.killpg(process.pid, signal.SIGKILL)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL
    return output


def _kill_at_line(process: subprocess.Popen, marker: str, what: str) -> str:
    """SIGKILL the run's process group the moment a line of its output contains ``marker``.

    For a stage too quick to catch by polling the store (the merge takes well under a second).
    """
    seen = []
    for line in process.stdout:
        seen.append(line)
        if marker in line:
            return "".join(seen) + _kill(process)
    process.wait(timeout=60)
    pytest.fail(f"the run ended before {what}:\n{''.join(seen)[-4000:]}")


def _count(store: Path, table: str, **equal: str) -> int:
    if not (store / "tables" / table).exists():
        return 0
    if not equal:
        return Store(store).count(table)
    rows = Store(store).read(table, list(equal)).to_pylist()
    return sum(all(row[k] == v for k, v in equal.items()) for row in rows)


def _contents(store: Path) -> dict[str, list[str]]:
    return {
        table: sorted(Store(store).read(table, [table_spec(table).id_column]).column(0).to_pylist())
        for table in TABLES
    }


def _checkpoints(store: Path) -> dict[str, dict]:
    found = {}
    for path in sorted((store / "checkpoints").iterdir()):
        lineage = json.loads((path / "charter-lineage.json").read_text(encoding="utf-8"))
        found[path.name] = {key: lineage[key] for key in ("preference_set", "pairs_by_source", "settings")}
    return found


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp_path = tmp_path_factory.mktemp("straight")
    store = tmp_path / "store"
    output = _finish(_start(_config(tmp_path, store)))
    return {"store": store, "output": output, "contents": _contents(store)}


def test_pipeline_runs_every_stage_and_writes_the_report(uninterrupted: dict) -> None:
    store, contents = uninterrupted["store"], uninterrupted["contents"]
    assert len(contents["generations"]) == 3 * 2
    assert len(contents["critiques"]) == 3 * 2  # one round per generation
    assert contents["ai_labels"] and len(contents["preference_sets"]) == 1
    kinds = sorted(name.split("-")[0] for name in _checkpoints(store))
    assert kinds == ["dpo", "reward", "sft"]
    dpo = next((store / "checkpoints").glob("dpo-*"))
    # SL-CAI then RL-CAI: DPO started from the SFT checkpoint, which is also its reference.
    sft = next((store / "checkpoints").glob("sft-*"))
    lineage = json.loads((dpo / "charter-lineage.json").read_text(encoding="utf-8"))
    assert lineage["start_checkpoint"] == str(sft.resolve())
    assert lineage["reference_model"] == str((sft / "model").resolve())
    scoreboard = json.loads((dpo / "scoreboard.json").read_text(encoding="utf-8"))
    assert scoreboard["prompts"] == 12  # one held-out prompt per family
    report = next((store / "reports").glob("*/report.html"))
    assert f"report: {report}" in uninterrupted["output"].replace("\n", "")
    exported = (store / "exports" / "preferences.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(exported) == len(contents["preferences"])


def test_killed_in_every_stage_resumes_to_the_same_result(uninterrupted: dict, tmp_path: Path) -> None:
    store = tmp_path / "store"
    config = _config(tmp_path, store)
    total_generations, total_critiques = 6, 6

    # Mid-generate: one of the three prompt batches stored.
    server = shared_prefect_api()
    _kill_when(_start(config), lambda: _count(store, "generations") >= 2, "the first generation batch")
    stored = _count(store, "generations")
    assert 2 <= stored < total_generations

    # Resume, then mid-critique: generation batches already stored are not run again.
    output = _kill_when(
        _start(config, server), lambda: _count(store, "critiques") >= 1, "the first critique batch"
    )
    done = stored // 2
    assert f"3 prompts in 3 batches; {done} already generated, {3 - done} to go" in output
    assert _count(store, "generations") == total_generations
    critiqued = _count(store, "critiques")
    assert 1 <= critiqued < total_critiques

    # Mid-label: after the rule labels and at least one judge batch.
    output = _kill_when(
        _start(config, server), lambda: _count(store, "ai_labels", method="logprob") >= 1, "a judge batch"
    )
    assert f"6 generations in 3 batches; {3 - critiqued // 2} batches to run" in output
    assert _count(store, "critiques") == total_critiques

    # Mid-merge: its subflow has begun and its preference set is not recorded yet.
    _kill_at_line(_start(config, server), "for flow 'merge'", "the merge subflow")
    assert _count(store, "preference_sets") == 0

    # Mid-training: DPO's staging folder exists (the reward model before it finished).
    _kill_when(
        _start(config, server),
        lambda: (
            any((store / "checkpoints").glob(".dpo-*.training"))
            if (store / "checkpoints").exists()
            else False
        ),
        "DPO training",
    )
    assert not any((store / "checkpoints").glob("dpo-*/charter-lineage.json"))

    output = _finish(_start(config, server))
    assert "3 prompts in 3 batches; 3 already generated, 0 to go" in output
    resumed = _contents(store)
    for table in TABLES:
        assert len(resumed[table]) == len(set(resumed[table])), f"duplicated rows in {table}"
    assert resumed == uninterrupted["contents"]
    assert _checkpoints(store) == _checkpoints(uninterrupted["store"])
