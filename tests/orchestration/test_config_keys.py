"""Every key of a pipeline config refuses a wrong value when the config loads, before any work.

The keys are found by walking ``PipelineSettings``' fields recursively, so a key added later
is covered without editing this file. Each case writes the bundled config with one wrong
value (wrong type, out of range, unknown choice, unknown extra key) and expects one problem
naming the file, the line of that key and its dotted name, in plain words, within 2 s, with
no store created.
"""

from __future__ import annotations

import json
import time
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import annotated_types
import pytest
import yaml
from pydantic import BaseModel

from tasks.core.errors import InputError
from tasks.orchestration.pipeline_config import PipelineSettings, load_pipeline_config
from tests.conftest import PROJECT_ROOT, run_charter

BUNDLED = PROJECT_ROOT / "datasets" / "healthcare-scheduling"
SECONDS = 2.0
# Pydantic's wording, which says nothing to someone editing YAML.
JARGON = ("Input should", "valid dictionary", "valid tuple", "instance of", "Value error", "[type=")
Location = tuple[str | int, ...]


@dataclass(frozen=True)
class Case:
    location: Location  # the key given the wrong value
    value: Any
    why: str

    @property
    def id(self) -> str:
        return f"{dotted(self.location)}={self.why}"


def dotted(location: Location) -> str:
    text = ""
    for part in location:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def _model(annotation: Any) -> type[BaseModel] | None:
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def _without_none(annotation: Any) -> Any:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        rest = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if _number_or_choice(rest):
            return annotation
        assert len(rest) == 1, f"no bad value known for the union {annotation}"
        return rest[0]
    return annotation


def _number_or_choice(members: list[Any]) -> bool:
    """A union of a number and named choices (``seed``: a number or ``date``)."""
    kinds = {typing.Literal if typing.get_origin(m) is typing.Literal else m for m in members}
    return len(members) > 1 and typing.Literal in kinds and kinds - {typing.Literal} <= {int, float}


def _out_of_range(location: Location, annotation: Any, metadata: list[Any]) -> Iterator[Case]:
    """A value just past each bound the field declares."""
    step = 1 if annotation is int else 0.5
    for bound in metadata:
        if isinstance(bound, annotated_types.Ge):
            yield Case(location, bound.ge - step, f"below-{bound.ge}")
        elif isinstance(bound, annotated_types.Gt):
            yield Case(location, bound.gt, f"not-above-{bound.gt}")
        elif isinstance(bound, annotated_types.Le):
            yield Case(location, bound.le + step, f"above-{bound.le}")
        elif isinstance(bound, annotated_types.Lt):
            yield Case(location, bound.lt, f"not-below-{bound.lt}")


def _wrong_values(location: Location, annotation: Any, metadata: list[Any]) -> Iterator[Case]:
    annotation = _without_none(annotation)
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    model = _model(annotation)
    if origin in (typing.Union, types.UnionType):  # a number or a choice: text that is neither
        yield Case(location, "lots", "neither-a-number-nor-a-choice")
    elif model is not None:
        yield Case(location, "not-a-mapping", "text-for-a-mapping")
        yield from cases(model, location)
    elif origin is typing.Literal:
        yield Case(location, "no-such-choice", "unknown-choice")
    elif annotation is bool:
        yield Case(location, "maybe", "text-for-true-or-false")
    elif annotation in (int, float):
        yield Case(location, "lots", "text-for-a-number")
        yield from _out_of_range(location, annotation, metadata)
    elif annotation is str:
        yield Case(location, ["a", "list"], "list-for-text")
    elif origin is dict:
        yield Case(location, ["a", "list"], "list-for-a-mapping")
    elif origin in (list, tuple):
        yield Case(location, 0.5, "number-for-a-list")
        item = args[0]
        if typing.get_origin(item) is typing.Literal:
            yield Case((*location, 0), "no-such-choice", "unknown-choice")
        elif _model(item) is not None:
            yield from cases(_model(item), (*location, 0))
    else:
        raise TypeError(f"{dotted(location)}: no bad value known for {annotation}; teach this test one")


def cases(model: type[BaseModel], prefix: Location = ()) -> Iterator[Case]:
    """A wrong value for every key of ``model`` (recursively), and an unknown key in each mapping."""
    for name, field in model.model_fields.items():
        yield from _wrong_values((*prefix, name), field.annotation, list(field.metadata))
    yield Case((*prefix, "no_such_key"), 1, "unknown-key")


def _set(data: Any, location: Location, value: Any) -> None:
    """Put ``value`` at ``location``, making the mappings and lists on the way that are missing."""
    *parents, last = location
    for part, child in zip(parents, location[1:], strict=True):
        empty: Any = [] if isinstance(child, int) else {}
        if isinstance(part, int):
            if len(data) <= part:
                data.append(empty)
        elif not isinstance(data.get(part), dict | list):
            data[part] = empty
        data = data[part]
    if isinstance(last, int) and len(data) <= last:
        data.append(value)
    else:
        data[last] = value


def write_config(path: Path, data: dict[str, Any]) -> dict[Location, int]:
    """``data`` as block-style YAML (each key on its own line, lists in flow style); each key's line."""
    lines: list[str] = []
    key_lines: dict[Location, int] = {}

    def emit(mapping: dict[str, Any], indent: int, prefix: Location) -> None:
        for key, value in mapping.items():
            key_lines[(*prefix, key)] = len(lines) + 1
            if isinstance(value, dict) and value:
                lines.append(f"{' ' * indent}{key}:")
                emit(value, indent + 2, (*prefix, key))
            else:
                lines.append(f"{' ' * indent}{key}: {json.dumps(value)}")

    emit(data, 0, ())
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return key_lines


def line_of(key_lines: dict[Location, int], location: Location) -> int:
    """The line a key is written on; a key inside a flow-style list sits on the list's line."""
    for end in range(len(location), 0, -1):
        if location[:end] in key_lines:
            return key_lines[location[:end]]
    raise AssertionError(f"{location} was not written")


@pytest.fixture(scope="module")
def bundled_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder laid out like the project, so the bundled config's relative paths hold unchanged."""
    root = tmp_path_factory.mktemp("project")
    (root / "constitutions").symlink_to(PROJECT_ROOT / "constitutions")
    folder = root / "datasets" / BUNDLED.name
    folder.mkdir(parents=True)
    for file in BUNDLED.iterdir():
        if file.name != "pipeline.yaml":
            (folder / file.name).symlink_to(file)
    return folder


@pytest.fixture(scope="module")
def bundled_data(bundled_copy: Path) -> dict[str, Any]:
    data = yaml.safe_load((BUNDLED / "pipeline.yaml").read_text(encoding="utf-8"))
    write_config(bundled_copy / "pipeline.yaml", data)
    load_pipeline_config(bundled_copy / "pipeline.yaml")  # the base every case spoils one key of is valid
    return data


def _refused(path: Path) -> tuple[InputError, float]:
    started = time.perf_counter()
    with pytest.raises(InputError) as raised:
        load_pipeline_config(path)
    return raised.value, time.perf_counter() - started


def _spoiled(folder: Path, data: dict[str, Any], location: Location, value: Any) -> tuple[Path, int]:
    """The bundled config with one value replaced, written beside the bundled inputs; the key's line."""
    spoiled = json.loads(json.dumps(data))
    _set(spoiled, location, value)
    path = folder / "pipeline.yaml"
    return path, line_of(write_config(path, spoiled), location)


def _assert_names(error: InputError, path: Path, line: int, location: Location) -> None:
    problems = [(p.path, p.line, p.field) for p in error.problems]
    assert problems == [(str(path), line, dotted(location))], str(error)
    text = str(error)
    assert text.startswith(f"{path}:{line} [{dotted(location)}]: "), text
    assert not [word for word in JARGON if word in text], text


ALL_CASES = list(cases(PipelineSettings))
# Keys that hold free text on purpose (paths, names, addresses); any other text key must be a choice.
FREE_TEXT_KEYS = {
    "store", "constitution", "file", "path", "format", "annotator", "family", "model", "base_url",
    "few_shot_path", "template_path", "policy_file", "backbone", "report_dir", "address", "against", "stress",
}  # fmt: skip
# Numbers any value of which works; every other number has a range.
UNBOUNDED_NUMBER_KEYS = {"seed"}


def leaves(model: type[BaseModel], prefix: Location = ()) -> Iterator[tuple[Location, Any, list[Any]]]:
    """Every key of ``model`` that holds a value rather than a section: location, type, constraints."""
    for name, field in model.model_fields.items():
        location, annotation = (*prefix, name), _without_none(field.annotation)
        items = typing.get_args(annotation) if typing.get_origin(annotation) in (list, tuple) else ()
        if _model(annotation) is not None:
            yield from leaves(annotation, location)
        elif items and _model(items[0]) is not None:
            yield from leaves(items[0], (*location, 0))
        else:
            yield location, annotation, list(field.metadata)


def test_free_text_and_unbounded_numbers_are_deliberate() -> None:
    """A new text key is a choice (a Literal) unless it names something; a new number has a range."""
    found = list(leaves(PipelineSettings))
    text = {dotted(location) for location, annotation, _ in found if annotation is str}
    assert {key.rsplit(".", 1)[-1] for key in text} <= FREE_TEXT_KEYS, sorted(text)
    bounds = (annotated_types.Ge, annotated_types.Gt, annotated_types.Le, annotated_types.Lt)
    unbounded = {
        dotted(location)
        for location, annotation, metadata in found
        if annotation in (int, float) and not any(isinstance(m, bounds) for m in metadata)
    }
    assert {key.rsplit(".", 1)[-1] for key in unbounded} <= UNBOUNDED_NUMBER_KEYS, sorted(unbounded)


def test_the_walk_reaches_every_section() -> None:
    sections = {case.location[0] for case in ALL_CASES}
    assert sections >= set(PipelineSettings.model_fields)
    assert len(ALL_CASES) > 150  # every nested key, not only the top-level ones


@pytest.mark.parametrize("case", ALL_CASES, ids=lambda case: case.id)
def test_every_key_refuses_a_wrong_value_at_load(
    case: Case, bundled_copy: Path, bundled_data: dict[str, Any]
) -> None:
    path, line = _spoiled(bundled_copy, bundled_data, case.location, case.value)
    error, seconds = _refused(path)
    _assert_names(error, path, line, case.location)
    assert seconds < SECONDS
    assert not (bundled_copy.parent.parent / "store").exists()


# Values each key accepts alone, refused by a rule across keys or by what a stage builds from them.
JUDGE = ("label", "judge")
SERVER = "http://127.0.0.1:9/v1"  # never contacted: the config is refused first
CROSS_KEY_CASES = {
    "cot-clamp-reversed": ({"label": {"judge": {"cot_clamp": [0.6, 0.4]}}}, (*JUDGE, "cot_clamp")),
    "cot-clamp-without-half": ({"label": {"judge": {"cot_clamp": [0.6, 0.9]}}}, (*JUDGE, "cot_clamp")),
    "judge-method-twice": ({"label": {"judge": {"methods": ["rule", "rule"]}}}, (*JUDGE, "methods")),
    "exo-without-smoothing": ({"train": {"dpo": {"loss_type": "exo_pair"}}}, ("train", "dpo")),
    "aggregation-without-reward-model": (
        {"train": {"ppo_reward": "rules", "ppo": {"reward_aggregation": "min"}}},
        ("train",),
    ),
    "openai-without-server": ({"judge_model": {"backend": "openai", "model": "m"}}, ("judge_model",)),
    "base-url-for-hf": ({"judge_model": {"backend": "hf", "base_url": SERVER}}, ("judge_model",)),
    "training-a-served-policy": (
        {"policy_model": {"backend": "openai", "model": "m", "base_url": SERVER}},
        ("policy_model", "backend"),
    ),
    "sft-without-critique": (
        {"critique": {"enabled": False}, "train": {"sft": {"enabled": True}}},
        ("train", "sft", "enabled"),
    ),
    "race-of-one": ({"train": {"algorithms": ["dpo", "dpo"]}}, ("train",)),
    "algorithm-and-race": ({"train": {"algorithms": ["dpo", "grpo"]}}, ("train",)),
    "ray-address-on-local": ({"runner": {"kind": "local", "address": "auto"}}, ("runner",)),
    "policy-file-and-inline": ({"merge": {"policy": {"ties": "keep"}}}, ("merge",)),
    "unknown-family": ({"prompts": {"families": ["booking", "bookings"]}}, ("prompts", "families")),
    "unknown-label-format": (
        {"human_labels": [{"path": "human-labels.jsonl", "format": "excel"}]},
        ("human_labels", 0, "format"),
    ),
}  # fmt: skip


def _merged(base: dict[str, Any], change: dict[str, Any]) -> dict[str, Any]:
    merged = json.loads(json.dumps(base))
    for key, value in change.items():
        both_mappings = isinstance(value, dict) and isinstance(merged.get(key), dict)
        merged[key] = _merged(merged[key], value) if both_mappings else value
    return merged


@pytest.mark.parametrize("name", sorted(CROSS_KEY_CASES))
def test_rules_across_keys_are_checked_at_load(
    name: str, bundled_copy: Path, bundled_data: dict[str, Any]
) -> None:
    change, location = CROSS_KEY_CASES[name]
    path = bundled_copy / "pipeline.yaml"
    line = line_of(write_config(path, _merged(bundled_data, change)), location)
    error, seconds = _refused(path)
    _assert_names(error, path, line, location)
    assert seconds < SECONDS


def key_path(name: str, under: Location = ()) -> Location:
    """Where the config key ``name`` sits in ``PipelineSettings`` (below ``under``), wherever a
    restructuring moved it; found by the same walk as the cases above."""
    found = {
        case.location
        for case in ALL_CASES
        if case.location[-1] == name and case.location[: len(under)] == under
    }
    assert len(found) == 1, f"key {name!r} under {under}: {found}"
    return found.pop()


# The bad configs that used to pass validation and fail minutes into a run (issue 12).
CLI_CASES = {
    "dpo-loss-typo": (key_path("loss_type", ("train", "dpo")), "sigmoidd", "'sigmoid'"),
    "judge-backend-typo": (key_path("backend", ("judge_model",)), "vlm", "'vllm'"),
    "zero-critique-tokens": (key_path("critique_tokens"), 0, "at least 1"),
    "unknown-policy-backend": (key_path("backend", ("policy_model",)), "vlm", "'openai'"),
}  # fmt: skip


@pytest.mark.integration
@pytest.mark.parametrize("name", sorted(CLI_CASES))
def test_charter_run_refuses_a_bad_config_at_once(
    name: str, bundled_copy: Path, bundled_data: dict[str, Any], tmp_path: Path
) -> None:
    location, value, expected = CLI_CASES[name]
    path, line = _spoiled(bundled_copy, bundled_data, location, value)
    store = tmp_path / "store"
    started = time.perf_counter()
    result = run_charter("run", str(path), "--store", str(store))
    seconds = time.perf_counter() - started
    assert result.returncode == 1, result.stderr
    assert f"{path}:{line} [{dotted(location)}]: " in result.stderr and expected in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert not store.exists() and not (bundled_copy.parent.parent / "store").exists()
    assert seconds < SECONDS, (
        f"{seconds:.2f} s, of which the CLI's start-up alone: {_start_up_seconds():.2f} s"
    )


def _start_up_seconds() -> float:
    """How long ``charter --help`` takes: the start-up every command pays before reading its input."""
    started = time.perf_counter()
    run_charter("--help")
    return time.perf_counter() - started
