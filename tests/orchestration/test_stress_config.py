"""``evaluate: {stress: FILE}`` in the pipeline config: resolved against the config's folder, checked
against the constitution, and refused at load, before any work, when it shares prompts (ids or
texts) with the prompt set the run trains on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tasks.core.errors import InputError
from tasks.orchestration.pipeline_config import load_pipeline_config
from tests.conftest import PROJECT_ROOT, run_charter

BUNDLED = PROJECT_ROOT / "datasets" / "healthcare-scheduling"
CONSTITUTION = PROJECT_ROOT / "constitutions" / "healthcare-scheduling.yaml"


def _config(folder: Path, stress: str, prompts: Path = BUNDLED / "prompts.jsonl") -> Path:
    path = folder / "pipeline.yaml"
    path.write_text(
        f"store: {folder / 'store'}\nconstitution: {CONSTITUTION}\nprompts:\n  file: {prompts}\n"
        f"evaluate:\n  per_family: 1\n  stress: {stress}\n  stress_per_type: 2\n",
        encoding="utf-8",
    )
    return path


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_the_bundled_config_evaluates_the_bundled_stress_set() -> None:
    config = load_pipeline_config(BUNDLED / "pipeline.yaml")
    assert config.evaluate.stress == str(BUNDLED / "stress.jsonl")
    assert config.evaluate.stage().stress == config.evaluate.stress and config.evaluate.stress_per_type >= 1


def test_a_relative_stress_path_follows_the_config(tmp_path: Path) -> None:
    _write(tmp_path / "edge.jsonl", _lines(BUNDLED / "stress.jsonl")[:3])
    assert load_pipeline_config(_config(tmp_path, "edge.jsonl")).evaluate.stress == str(
        tmp_path / "edge.jsonl"
    )
    with pytest.raises(InputError, match="no such file"):
        load_pipeline_config(_config(tmp_path, "missing.jsonl"))


def test_a_stress_set_sharing_ids_or_texts_with_the_training_prompts_is_refused(tmp_path: Path) -> None:
    stress = _lines(BUNDLED / "stress.jsonl")[:4]
    training = _lines(BUNDLED / "prompts.jsonl")
    shared_id = {**stress[1], "id": training[0]["id"]}  # a training prompt's id on a stress prompt
    same_text = {**stress[2], "family": "medication", "text": training[7]["text"], "expected": None}
    same_text.pop("messages", None)
    path = _write(
        tmp_path / "stress.jsonl", [stress[0], shared_id, {k: v for k, v in same_text.items() if v}]
    )
    config = _config(tmp_path, "stress.jsonl")
    with pytest.raises(InputError) as caught:
        load_pipeline_config(config)
    [problem] = caught.value.problems
    assert (problem.path, problem.field, problem.line) == (str(config), "evaluate.stress", 7)
    assert problem.message.startswith(
        f"2 of the 3 prompts of {path} share an id or a text with the prompts file"
    )
    assert f"(first: {training[0]['id']})" in problem.message
    # The same check stops `charter run` before it creates anything.
    result = run_charter("run", str(config))
    assert result.returncode == 1 and "evaluate.stress" in result.stderr and path.name in result.stderr
    assert not (tmp_path / "store").exists()


def test_a_stress_line_the_constitution_cannot_check_points_into_the_stress_file(tmp_path: Path) -> None:
    row = {**_lines(BUNDLED / "stress.jsonl")[0], "expected": "escalate"}  # nothing urgent in it
    path = _write(tmp_path / "stress.jsonl", [row])
    with pytest.raises(InputError) as caught:
        load_pipeline_config(_config(tmp_path, "stress.jsonl"))
    [problem] = caught.value.problems
    assert (problem.path, problem.line, problem.field) == (str(path), 1, "expected")
