"""Options made from settings models: defaults, help and checks come from the model, once."""

from __future__ import annotations

from typing import Literal

import pytest
import typer
from pydantic import BaseModel, ConfigDict, Field
from typer.testing import CliRunner

from flows.cli.commands import load
from flows.cli.options import Flag, Options, settings_options
from tasks.core.errors import CharterError
from tasks.critique.settings import CritiqueSettings
from tasks.evaluate.settings import EvaluateSettings
from tasks.generate.settings import GenerateSettings
from tasks.label.settings import LabelSettings


class Knobs(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    size: int = Field(default=3, ge=1, description="How big.")
    mode: Literal["fast", "slow"] = "fast"
    tags: tuple[str, ...] = ("a", "b")
    seed: int = 0


class Other(BaseModel):
    seed: int = 0
    loud: bool = True


def _command(received: dict) -> typer.Typer:
    tiny = typer.Typer()

    @tiny.command()
    @settings_options(
        knobs=Options(Knobs, flags={"tags": Flag(names=("--tag",))}),
        other=Options(Other, flags={"loud": Flag(names=("--loud/--quiet",))}),
    )
    def run(name: str, *, knobs: Knobs, other: Other) -> None:
        received.update(name=name, knobs=knobs, other=other)

    return tiny


def test_options_build_the_models_with_their_defaults_and_given_values() -> None:
    received: dict = {}
    tiny = _command(received)
    assert CliRunner().invoke(tiny, ["x"]).exit_code == 0
    assert received == {"name": "x", "knobs": Knobs(), "other": Other()}
    given = ["x", "--size", "5", "--mode", "slow", "--tag", "c", "--tag", "d", "--seed", "7", "--quiet"]
    assert CliRunner().invoke(tiny, given).exit_code == 0
    assert received["knobs"] == Knobs(size=5, mode="slow", tags=("c", "d"), seed=7)
    assert received["other"] == Other(seed=7, loud=False)  # one --seed feeds both models


def test_a_prefix_gives_a_second_model_of_one_type_its_own_options() -> None:
    received: dict = {}
    tiny = typer.Typer()

    @tiny.command()
    @settings_options(
        other=Options(Other, flags={"loud": Flag(names=("--loud/--quiet",))}),
        judge=Options(Other, flags={"loud": Flag(names=("--loud/--quiet",))}, prefix="judge"),
    )
    def run(*, other: Other, judge: Other) -> None:
        received.update(other=other, judge=judge)

    given = ["--seed", "3", "--judge-seed", "5", "--judge-quiet"]
    assert CliRunner().invoke(tiny, given, catch_exceptions=False).exit_code == 0
    assert received == {"other": Other(seed=3), "judge": Other(seed=5, loud=False)}
    with pytest.raises(CharterError, match="--judge-seed: must be a whole number"):
        Options(Other, prefix="judge").build({"judge_seed": "x", "judge_loud": True})


def test_help_shows_the_field_description_and_default() -> None:
    shown = CliRunner().invoke(_command({}), ["--help"], env={"COLUMNS": "200"}).output
    assert "How big. [default: 3]" in shown and "--quiet" in shown and "[default: loud]" in shown


def test_bad_values_fail_naming_the_flag() -> None:
    tiny = _command({})
    with pytest.raises(CharterError, match=r"--size: must be at least 1 \(got 0\)"):
        CliRunner().invoke(tiny, ["x", "--size", "0"], catch_exceptions=False)
    with pytest.raises(CharterError, match="unknown --mode 'medium'; choose from fast or slow"):
        CliRunner().invoke(tiny, ["x", "--mode", "medium"], catch_exceptions=False)


def test_overrides_hold_only_what_was_given_and_apply_over_a_base() -> None:
    group = Options(Knobs, only=("size", "mode"), overrides=True)
    assert group.build({"size": None, "mode": "slow"}) == {"mode": "slow"}
    assert group.apply(Knobs(size=9), {"mode": "slow"}) == Knobs(size=9, mode="slow")
    with pytest.raises(CharterError, match="--size"):
        group.apply(Knobs(), {"size": 0})


def test_options_that_would_clash_with_a_parameter_are_refused() -> None:
    def run(seed: int, *, knobs: Knobs) -> None: ...

    with pytest.raises(TypeError, match="share seed"):
        settings_options(knobs=Options(Knobs))(run)


@pytest.mark.parametrize(
    ("command", "model", "skip"),
    [
        ("generate", GenerateSettings, ()),
        ("critique", CritiqueSettings, ()),
        ("export", CritiqueSettings, ("batch_size",)),
        ("eval", EvaluateSettings, ()),
    ],
)
def test_the_real_commands_take_their_defaults_from_the_settings_models(command, model, skip) -> None:
    click_command = load(command)
    defaults = {p.name: p.default for p in click_command.params}
    expected = {name: value for name, value in model().model_dump().items() if name not in skip}
    assert {name: defaults[name] for name in expected} == expected
    assert not set(skip) & set(defaults)


def test_label_takes_its_batch_size_from_the_label_stage_settings() -> None:
    label = load("label")
    assert {p.name: p.default for p in label.params}["batch_size"] == LabelSettings().batch_size
