"""The pipeline config: what `charter run` reads, and the errors a bad config gets before any work."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.core.errors import InputError
from tasks.orchestration.pipeline_config import load_pipeline_config
from tests.conftest import PROJECT_ROOT, run_charter

BUNDLED = PROJECT_ROOT / "datasets" / "healthcare-scheduling"
DEFAULT_CONFIG = BUNDLED / "pipeline.yaml"


def _config(tmp_path: Path, body: str) -> Path:
    """A config in a temporary folder whose inputs are the bundled files (absolute paths)."""
    path = tmp_path / "pipeline.yaml"
    path.write_text(
        f"constitution: {PROJECT_ROOT / 'constitutions' / 'healthcare-scheduling.yaml'}\n"
        f"prompts:\n  file: {BUNDLED / 'prompts.jsonl'}\n" + body,
        encoding="utf-8",
    )
    return path


def _problem(exc: pytest.ExceptionInfo[InputError]) -> tuple[int | None, str | None, str]:
    assert len(exc.value.problems) == 1, exc.value.problems
    problem = exc.value.problems[0]
    return problem.line, problem.field, problem.message


def test_bundled_config_resolves_paths_against_its_folder() -> None:
    config = load_pipeline_config(DEFAULT_CONFIG)
    assert config.store == str(PROJECT_ROOT / "store")
    assert config.constitution == str(PROJECT_ROOT / "constitutions" / "healthcare-scheduling.yaml")
    assert config.prompts.file == str(BUNDLED / "prompts.jsonl")
    assert config.prompts.set_name == "healthcare-scheduling"
    assert [spec.path for spec in config.human_labels] == [str(BUNDLED / "human-labels.jsonl")]
    assert config.merge_policy().ai_min_margin == 0.05  # from merge-policy.yaml, not the default 0.1
    assert config.critique.few_shot_path == str(
        PROJECT_ROOT / "constitutions" / "healthcare-scheduling.few-shot.jsonl"
    )
    assert config.train.algorithm == "dpo"
    # The judge defaults to the policy's model, so one engine serves both.
    assert config.judge_spec == config.policy_model.spec()


def test_relative_store_and_inputs_follow_the_config_not_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "policy.yaml").write_text("ties: keep\n", encoding="utf-8")
    path = _config(tmp_path, "store: runs/store\nmerge:\n  policy_file: data/policy.yaml\n")
    monkeypatch.chdir(PROJECT_ROOT)
    config = load_pipeline_config(path)
    assert config.store == str(tmp_path / "runs" / "store")
    assert config.merge_policy().ties == "keep"


def test_unknown_key_names_its_line_and_lists_the_known_ones(tmp_path: Path) -> None:
    path = _config(tmp_path, "train:\n  algorithm: dpo\n  dpo:\n    stepz: 3\n")
    with pytest.raises(InputError) as exc:
        load_pipeline_config(path)
    line, field, message = _problem(exc)
    assert (line, field) == (7, "train.dpo.stepz")
    assert "unknown field 'stepz'" in message and "steps" in message
    assert str(path) in str(exc.value)


def test_wrong_type_and_bad_choice_are_reported_together(tmp_path: Path) -> None:
    path = _config(tmp_path, "generate:\n  n: two\ntrain:\n  algorithm: sft\n")
    with pytest.raises(InputError) as exc:
        load_pipeline_config(path)
    found = {(p.line, p.field) for p in exc.value.problems}
    assert found == {(5, "generate.n"), (7, "train.algorithm")}


def test_missing_required_key(tmp_path: Path) -> None:
    path = tmp_path / "pipeline.yaml"
    path.write_text(f"prompts:\n  file: {BUNDLED / 'prompts.jsonl'}\n", encoding="utf-8")
    with pytest.raises(InputError) as exc:
        load_pipeline_config(path)
    assert _problem(exc)[1:] == ("constitution", "required field is missing")


def test_missing_file_names_the_key(tmp_path: Path) -> None:
    path = _config(tmp_path, "human_labels:\n  - path: nowhere/labels.jsonl\n")
    with pytest.raises(InputError) as exc:
        load_pipeline_config(path)
    line, field, message = _problem(exc)
    assert (line, field) == (5, "human_labels[0].path")
    assert message == f"no such file: {tmp_path / 'nowhere' / 'labels.jsonl'}"


def test_bad_inputs_are_parsed_before_any_work(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("ties: sometimes\n", encoding="utf-8")
    path = _config(tmp_path, f"merge:\n  policy_file: {policy}\n")
    with pytest.raises(InputError) as exc:
        load_pipeline_config(path)
    assert _problem(exc)[:2] == (1, "ties")
    assert str(policy) in str(exc.value)


def test_policy_file_and_inline_policy_are_exclusive(tmp_path: Path) -> None:
    path = _config(
        tmp_path, f"merge:\n  policy_file: {BUNDLED / 'merge-policy.yaml'}\n  policy:\n    ties: keep\n"
    )
    with pytest.raises(InputError, match="not both"):
        load_pipeline_config(path)


def test_inline_policy_is_validated_with_its_line(tmp_path: Path) -> None:
    path = _config(tmp_path, "merge:\n  policy:\n    ai_min_margin: lots\n")
    with pytest.raises(InputError) as exc:
        load_pipeline_config(path)
    assert _problem(exc)[:2] == (6, "merge.policy.ai_min_margin")


def test_charter_run_rejects_a_bad_config_before_starting(tmp_path: Path) -> None:
    path = _config(tmp_path, f"store: {tmp_path / 'store'}\nlabel:\n  pairs: [all, everything]\n")
    result = run_charter("run", str(path))
    assert result.returncode == 1
    assert f"{path}:6" in result.stderr and "label.pairs[1]" in result.stderr
    assert not (tmp_path / "store").exists()
