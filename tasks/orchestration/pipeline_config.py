"""The pipeline config: one YAML file that says what ``charter run`` does, checked before any work.

Every stage's settings reuse the models the single-stage commands use (``CritiqueSettings``,
``JudgeSettings``, ``MergeSettings``, ``DPOSettings``, ...), so a key means the same thing in
the config as the flag of the same name. Unknown keys, wrong types and missing files fail
at load time, naming the file, the line and the key, so a nightly run cannot die an hour
in on a typo.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tasks.backends.settings import BackendSettings
from tasks.core.errors import InputError, Problem, read_input_text
from tasks.core.yaml_source import LocatedDocument, load_located_yaml, validate_located
from tasks.critique.plan import CritiqueSettings
from tasks.ingest.label_files import LabelFileSettings, preflight
from tasks.ingest.prompt_sets import default_prompt_set_name
from tasks.label.judge import JudgeSettings
from tasks.label.pairs import PairMode
from tasks.merge.policy import MergeSettings, load_merge_policy
from tasks.orchestration.runners import RunnerSettings
from tasks.train.settings import DPOSettings, PPOSettings, RewardModelSettings

STAGES = ("ingest", "generate", "critique", "label", "merge", "train", "evaluate")
Stage = Literal["ingest", "generate", "critique", "label", "merge", "train", "evaluate"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelSettings(_Section):
    """A backend and model (``auto``: vLLM where installed, else transformers)."""

    backend: str = "auto"
    model: str | None = None
    base_url: str | None = None
    options: dict[str, object] = {}

    def spec(self) -> BackendSettings:
        return BackendSettings(
            kind=self.backend, model=self.model, base_url=self.base_url, options=self.options
        )


class PromptsSettings(_Section):
    file: str
    families: list[str] | None = None
    limit: int | None = Field(default=None, ge=1)

    @property
    def set_name(self) -> str:
        """The name ingest gives the file's set (its folder's name for a ``prompts.jsonl``)."""
        return default_prompt_set_name(self.file)


class GenerateStageSettings(_Section):
    n: int = Field(default=4, ge=1)
    temperature: float = Field(default=0.8, ge=0)
    top_p: float = Field(default=0.95, gt=0, le=1)
    max_tokens: int = Field(default=128, ge=1)
    seed: int = 0
    batch_size: int = Field(default=8, ge=1)


class CritiqueStageSettings(_Section):
    enabled: bool = True
    settings: CritiqueSettings = CritiqueSettings()
    batch_size: int = Field(default=8, ge=1)


class LabelStageSettings(_Section):
    # Each mode is one label flow run: ``all`` pairs the pipeline's responses, ``human`` judges
    # the pairs people labelled (what the audit's AI-human agreement is measured on).
    pairs: list[PairMode] = ["all", "human"]
    per_prompt: int | None = Field(default=None, ge=1)
    judge: JudgeSettings = JudgeSettings()
    batch_size: int = Field(default=16, ge=1)


class MergeStageSettings(_Section):
    """The merge policy: a policy file (README, "Merge policy") or the same keys inline."""

    policy_file: str | None = None
    policy: MergeSettings | None = None

    @model_validator(mode="after")
    def _one_policy(self) -> MergeStageSettings:
        if self.policy_file and self.policy:
            raise ValueError("give policy_file or an inline policy, not both")
        return self


class TrainStageSettings(_Section):
    algorithm: Literal["dpo", "ppo", "none"] = "dpo"
    # The reward model is trained whenever training runs: the scoreboard and PPO score with it.
    reward_model: RewardModelSettings = RewardModelSettings()
    dpo: DPOSettings = DPOSettings()
    ppo: PPOSettings = PPOSettings()
    # What PPO is rewarded by: the reward model, the constitution's rules, or both summed.
    ppo_reward: Literal["reward_model", "rules", "both"] = "reward_model"


class EvaluateStageSettings(_Section):
    enabled: bool = True
    per_family: int = Field(default=2, ge=1)
    max_tokens: int = Field(default=64, ge=1)
    judge: bool = True
    seed: int = 0


class PipelineSettings(_Section):
    """What ``charter run`` does; relative paths are relative to the config file's folder."""

    store: str = "store"
    constitution: str
    prompts: PromptsSettings
    human_labels: list[LabelFileSettings] = []
    policy_model: ModelSettings = ModelSettings()
    # The judge's model; by default the policy's (the same engine serves both).
    judge_model: ModelSettings | None = None
    generate: GenerateStageSettings = GenerateStageSettings()
    critique: CritiqueStageSettings = CritiqueStageSettings()
    label: LabelStageSettings = LabelStageSettings()
    merge: MergeStageSettings = MergeStageSettings()
    train: TrainStageSettings = TrainStageSettings()
    evaluate: EvaluateStageSettings = EvaluateStageSettings()
    report_dir: str | None = None
    # Where generation, critique and judging batches run: local (in order, in this process) or
    # ray (Prefect's Ray task runner, model engines in Ray actors; address: see README, "Ray").
    runner: RunnerSettings = RunnerSettings()

    @property
    def judge_spec(self) -> BackendSettings:
        return (self.judge_model or self.policy_model).spec()

    def merge_policy(self) -> MergeSettings:
        if self.merge.policy_file:
            return load_merge_policy(self.merge.policy_file)
        return self.merge.policy or MergeSettings()


# Keys holding file paths: resolved against the config's folder and checked to exist.
_PATH_KEYS: tuple[tuple[str, ...], ...] = (
    ("constitution",),
    ("prompts", "file"),
    ("merge", "policy_file"),
    ("critique", "settings", "few_shot_path"),
    ("label", "judge", "template_path"),
)


def load_pipeline_config(path: str | Path) -> PipelineSettings:
    """Parse, validate and resolve a pipeline config; every problem names the file, line and key."""
    source = str(path)
    document = load_located_yaml(read_input_text(path), source)
    config = validate_located(PipelineSettings, document, source)
    config = _resolved(config, Path(path).resolve().parent, document, source)
    _check_inputs(config)
    return config


def _check_inputs(config: PipelineSettings) -> None:
    """Parse every file the run will read (constitution, prompts, labels, policy, templates) now."""
    preflight([config.constitution], [config.prompts.file], list(config.human_labels))
    config.merge_policy()
    config.critique.settings.config()
    config.label.judge.template()


def _resolved(
    config: PipelineSettings, base: Path, document: LocatedDocument, source: str
) -> PipelineSettings:
    """Relative paths made absolute against ``base``; a missing file is an error naming its key."""
    problems: list[Problem] = []

    def resolve(value: str, location: tuple[str | int, ...]) -> str:
        resolved = (base / value).resolve()
        if not resolved.is_file():
            problems.append(
                Problem(
                    path=source,
                    line=document.line_of(location),
                    field=".".join(str(part) for part in location),
                    message=f"no such file: {resolved}",
                )
            )
        return str(resolved)

    data = config.model_dump()
    for location in _PATH_KEYS:
        parent = data
        for part in location[:-1]:
            parent = parent[part]
        if parent.get(location[-1]):
            parent[location[-1]] = resolve(parent[location[-1]], location)
    for index, spec in enumerate(data["human_labels"]):
        spec["path"] = resolve(spec["path"], ("human_labels", index, "path"))
    data["store"] = str((base / config.store).resolve())
    if config.report_dir:
        data["report_dir"] = str((base / config.report_dir).resolve())
    if problems:
        raise InputError(problems)
    return PipelineSettings.model_validate(data)
