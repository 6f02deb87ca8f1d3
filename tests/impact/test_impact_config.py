"""The pipeline config's optional ``impact`` section: resolved like every path, refused before any work."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.core.errors import InputError
from tasks.orchestration.pipeline_config import load_pipeline_config
from tests.impact.conftest import BUNDLED, PROJECT_ROOT

PROMPTS = PROJECT_ROOT / "datasets" / "healthcare-scheduling" / "prompts.jsonl"


def _config(tmp_path: Path, impact: str) -> Path:
    path = tmp_path / "pipeline.yaml"
    path.write_text(f"constitution: {BUNDLED}\nprompts:\n  file: {PROMPTS}\n{impact}", encoding="utf-8")
    return path


def _problems(path: Path) -> list[str]:
    with pytest.raises(InputError) as raised:
        load_pipeline_config(path)
    return [str(problem) for problem in raised.value.problems]


def test_against_is_resolved_against_the_config_folder_and_the_section_is_optional(tmp_path: Path) -> None:
    (tmp_path / "old.yaml").write_text(BUNDLED.read_text(encoding="utf-8"), encoding="utf-8")
    config = load_pipeline_config(_config(tmp_path, "impact:\n  against: old.yaml\n  batch_size: 4\n"))
    assert config.impact is not None
    assert (config.impact.old_constitution, config.impact.batch_size) == (str(tmp_path / "old.yaml"), 4)
    assert load_pipeline_config(_config(tmp_path, "")).impact is None


def test_a_missing_or_broken_old_constitution_is_named_with_its_line(tmp_path: Path) -> None:
    path = _config(tmp_path, "impact:\n  against: nowhere.yaml\n")
    assert _problems(path) == [f"{path}:5 [impact.against]: no such file: {tmp_path / 'nowhere.yaml'}"]
    broken = tmp_path / "broken.yaml"
    broken.write_text(BUNDLED.read_text(encoding="utf-8").replace('version: "1.0.0"', "version: 1"))
    problems = _problems(_config(tmp_path, f"impact:\n  against: {broken.name}\n"))
    assert problems == [f"{broken}:2 [version]: expected a string, got int 1 (quote it in YAML)"]
    path = _config(tmp_path, "impact:\n  batch_size: 2\n")
    assert _problems(path) == [
        f"{path}:4 [impact]: the impact section needs against: the constitution the labels were made under"
    ]
