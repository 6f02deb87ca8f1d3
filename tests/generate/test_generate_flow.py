"""The generate and critique flows as users run them: killed mid-run and resumed, bad input, export."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tasks.constitution.model import load_constitution
from tasks.critique.revision_check import talks_about_the_response
from tasks.store.sql import run_query
from tasks.store.store import Store
from tests.conftest import PROJECT_ROOT, run_charter

pytestmark = pytest.mark.integration

PROMPTS = PROJECT_ROOT / "datasets" / "healthcare-scheduling" / "prompts.jsonl"
CONSTITUTION = PROJECT_ROOT / "constitutions" / "healthcare-scheduling.yaml"
GENERATE = [
    "generate",
    "--prompts",
    str(PROMPTS),
    "--backend",
    "hf",
    "--limit",
    "8",
    "-n",
    "2",
    "--max-tokens",
    "12",
    "--batch-size",
    "2",
    "--seed",
    "5",
]


def generations(store: Path) -> dict[str, tuple[str, str]]:
    rows = Store(store).read("generations", ["generation_id", "text", "run_id"]).to_pylist()
    return {r["generation_id"]: (r["text"], r["run_id"]) for r in rows}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    store = tmp_path_factory.mktemp("uninterrupted") / "store"
    result = run_charter(*GENERATE, "--store", str(store))
    assert result.returncode == 0, result.stderr
    assert "batches (0 already done)" in result.stdout
    return store


def test_killed_generate_resumes_without_duplicates_or_redoing_batches(
    uninterrupted: Path, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    charter = Path(sys.executable).parent / "charter"
    process = subprocess.Popen(
        [str(charter), *GENERATE, "--store", str(store)],
        cwd=PROJECT_ROOT,
        env={**os.environ},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # the kill takes Prefect's temporary server with it
    )
    table = store / "tables" / "generations"
    deadline = time.monotonic() + 240
    while len(list(table.glob("*.parquet"))) < 2:
        assert process.poll() is None, "generate finished before it could be killed"
        assert time.monotonic() < deadline, "no batch landed in time"
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    before = generations(store)
    assert 0 < len(before) < 16 and len(before) % 4 == 0  # whole batches only: 2 prompts x 2 samples

    rerun = run_charter(*GENERATE, "--store", str(store))
    assert rerun.returncode == 0, rerun.stderr
    after = generations(store)
    assert len(after) == 16
    ids = Store(store).read("generations", ["generation_id"]).column("generation_id").to_pylist()
    assert len(ids) == len(set(ids)) == 16
    # The batches that landed before the kill were not generated again: same rows, first run's id.
    assert {gid: after[gid] for gid in before} == before
    assert f"({len(before) // 4} already done)" in rerun.stdout
    # And the result is exactly an uninterrupted run's.
    reference = generations(uninterrupted)
    assert {gid: text for gid, (text, _) in after.items()} == {
        gid: text for gid, (text, _) in reference.items()
    }
    statuses = [r["status"] for r in run_query(Store(store), "select status from run_summary").records()]
    assert statuses.count("completed") == 1 and len(statuses) == 2  # the killed run never closed


def test_critique_rows_carry_principle_and_constitution_then_export(
    uninterrupted: Path, tmp_path: Path
) -> None:
    chains = [
        "--prompts",
        "healthcare-scheduling",
        "--constitution",
        str(CONSTITUTION),
        "--backend",
        "hf",
        "--limit",
        "2",
        "--critique-tokens",
        "12",
        "--revision-tokens",
        "16",
        "--store",
        str(uninterrupted),
    ]
    critique = ["critique", *chains]
    result = run_charter(*critique)
    assert result.returncode == 0, result.stderr
    rows = Store(uninterrupted).read("critiques").to_pylist()
    assert len(rows) == 4  # 2 prompts x 2 samples x 1 round
    constitution = load_constitution(CONSTITUTION)
    for row in rows:
        principle = constitution.principle(row["principle_id"])
        assert row["constitution_id"] == constitution.constitution_id
        assert row["principle_hash"] == principle.principle_hash
        assert row["revision"] and row["critique"]
    again = run_charter(*critique)
    assert "critiques +0" in again.stdout

    exported = tmp_path / "sft.jsonl"
    sft = run_charter("export", "sft", *chains, "-o", str(exported))
    # Revisions that talk about the response instead of being one are left out, and counted.
    revisions = {
        row["generation_id"]: row["revision"]
        for row in rows
        if talks_about_the_response(row["revision"], row["input_text"]) is None
    }
    assert ("talks about the response" in sft.stdout + sft.stderr) == (len(revisions) < 4)
    if not revisions:  # nothing left to export: the command fails, saying what it left out
        assert sft.returncode != 0
        return
    assert sft.returncode == 0, sft.stderr
    records = [json.loads(line) for line in exported.read_text().splitlines()]
    assert len(records) == len(revisions)
    for record in records:
        assert record["messages"][-1] == {"role": "assistant", "content": revisions[record["generation_id"]]}
        assert record["messages"][0]["role"] == "user"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            ["--model", "/nonexistent/model-folder", "--backend", "hf"],
            "unknown model '/nonexistent/model-folder'",
        ),
        (["--backend", "openai", "--model", "served", "--base-url", "http://127.0.0.1:9"], "cannot reach"),
        (["--backend", "tpu"], "unknown --backend 'tpu'; choose from auto, vllm, hf or openai"),
    ],
    ids=["model-path", "unreachable-server", "backend"],
)
def test_bad_generation_settings_fail_before_touching_the_store(
    tmp_path: Path, arguments: list[str], message: str
) -> None:
    store = tmp_path / "store"
    result = run_charter("generate", "--prompts", str(PROMPTS), *arguments, "--store", str(store))
    assert result.returncode == 1
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not store.exists()


def test_malformed_prompt_file_is_located_and_creates_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "prompts.jsonl"
    bad.write_text('{"id": "a", "family": "booking", "text": "hi"}\n{"id": "b", "family": "booking"}\n')
    store = tmp_path / "store"
    result = run_charter("generate", "--prompts", str(bad), "--backend", "hf", "--store", str(store))
    assert result.returncode == 1
    assert f"{bad}:2 [text]: required field is missing" in result.stderr
    assert not store.exists()
