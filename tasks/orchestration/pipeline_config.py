"""The pipeline config: one YAML file that says what ``charter run`` does, checked before any work.

Every stage's section is that stage's settings model (``GenerateSettings``, ``CritiqueSettings``,
``LabelSettings``, ``MergeSettings``, ``DPOSettings``, ``EvaluateSettings``, ...), the models the
single-stage commands' options are made from, so a key means the same thing in the config as
the flag of the same name. Everything a run would refuse is refused at load time, naming the
file, the line and the key: unknown keys, wrong types, values out of range, unknown choices,
missing or malformed files, and what only the objects the stages build from the config check
(rules across keys, a backend or runner that cannot run), so a nightly run cannot die an hour
in on a typo.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from tasks.backends.base import SamplingSettings
from tasks.backends.settings import BackendKind, BackendSettings
from tasks.constitution.model import load_constitution
from tasks.core.errors import CharterError, InputError, Problem, read_input_text
from tasks.core.validation_messages import plain_message
from tasks.core.yaml_source import LocatedDocument, dotted_path, load_located_yaml, validate_located
from tasks.critique.settings import CritiqueSettings
from tasks.evaluate.evaluation import EvaluationSettings
from tasks.evaluate.settings import EvaluateSettings
from tasks.generate.selection import DATE_SEED, SelectionSettings
from tasks.generate.settings import GenerateSettings
from tasks.impact.settings import ImpactStageSettings
from tasks.ingest.label_files import LabelFileSettings, preflight
from tasks.ingest.prompt_sets import default_prompt_set_name, load_prompt_set
from tasks.label.settings import LabelSettings
from tasks.merge.policy import MergeSettings, load_merge_policy
from tasks.orchestration.runners import RunnerSettings, check_runnable
from tasks.stress.stress_set import load_stress_set
from tasks.train.settings import DPOSettings, GRPOSettings, PPOSettings, RewardModelSettings, SFTSettings
from tasks.train.tracking import check_report_to

Location = tuple[str | int, ...]
STAGES = ("ingest", "generate", "critique", "label", "impact", "merge", "train", "evaluate")
Stage = Literal["ingest", "generate", "critique", "label", "impact", "merge", "train", "evaluate"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelSettings(_Section):
    """A backend and model (``auto``: vLLM where installed, else transformers)."""

    backend: BackendKind = BackendSettings.model_fields["kind"]
    model: str | None = BackendSettings.model_fields["model"]
    base_url: str | None = BackendSettings.model_fields["base_url"]
    options: dict[str, object] = {}

    @model_validator(mode="after")
    def _server_named(self) -> ModelSettings:
        """A server and the name it serves the model under go together: only backend openai reads them."""
        if self.backend == "openai" and not (self.model and self.base_url):
            raise ValueError(
                "backend openai needs base_url (the server, e.g. http://127.0.0.1:8000/v1) "
                "and model (the name it serves the model under)"
            )
        if self.backend != "openai" and self.base_url:
            raise ValueError(f"base_url is read only by backend openai, not {self.backend}")
        return self

    def spec(self) -> BackendSettings:
        return BackendSettings(
            kind=self.backend, model=self.model, base_url=self.base_url, options=self.options
        )


class PromptsSettings(SelectionSettings):
    """The prompt set, and which of its prompts a run takes (``select``, ``seed``: the selection)."""

    file: str
    families: list[str] | None = None
    limit: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _seed_only_for_sample(self) -> PromptsSettings:
        if self.seed != DATE_SEED and self.select != "sample":  # the default date is harmless
            raise ValueError(f"seed is read only by select: sample, not select: {self.select}")
        return self

    @property
    def set_name(self) -> str:
        """The name ingest gives the file's set (its folder's name for a ``prompts.jsonl``)."""
        return default_prompt_set_name(self.file)

    def selection(self) -> SelectionSettings:
        return SelectionSettings(select=self.select, seed=self.seed)


class CritiqueStageSettings(CritiqueSettings):
    """The critique stage's settings, and whether the pipeline runs it."""

    enabled: bool = True

    def stage(self) -> CritiqueSettings:
        return CritiqueSettings(**self.model_dump(exclude={"enabled"}))


class MergeStageSettings(_Section):
    """The merge policy: a policy file (README, "Merge policy") or the same keys inline."""

    policy_file: str | None = None
    policy: MergeSettings | None = None

    @model_validator(mode="after")
    def _one_policy(self) -> MergeStageSettings:
        if self.policy_file and self.policy:
            raise ValueError("give policy_file or an inline policy, not both")
        return self


PolicyAlgorithm = Literal["dpo", "ppo", "grpo"]


class SFTStageSettings(SFTSettings):
    """SL-CAI: supervised fine-tuning on the critique stage's final revisions before the preference
    stage; when on, every policy algorithm starts from its checkpoint and uses it as reference."""

    enabled: bool = False

    def stage(self) -> SFTSettings:
        return SFTSettings(**self.model_dump(exclude={"enabled"}))


class TrainStageSettings(_Section):
    # One policy algorithm, or none (the reward model, and SFT if on, still train).
    algorithm: Literal["dpo", "ppo", "grpo", "none"] = "dpo"
    # A race instead: train each of two or more algorithms (from the same start) and compare them
    # on the same held-out prompts, seeds and preferences (the evaluate stage runs `compare`).
    algorithms: tuple[PolicyAlgorithm, ...] = ()
    sft: SFTStageSettings = SFTStageSettings()
    # The reward model is trained whenever training runs: the scoreboard and PPO score with it.
    reward_model: RewardModelSettings = RewardModelSettings()
    dpo: DPOSettings = DPOSettings()
    ppo: PPOSettings = PPOSettings()
    grpo: GRPOSettings = GRPOSettings()
    # What PPO is rewarded by: the reward model, the constitution's rules, or both summed.
    # (GRPO says it in grpo.rewards, with weights.)
    ppo_reward: Literal["reward_model", "rules", "both"] = "reward_model"

    @model_validator(mode="after")
    def _aggregation_needs_a_reward_model(self) -> TrainStageSettings:
        # PPO refuses this pairing too, but only after the reward model has trained.
        if self.ppo_reward == "rules" and self.ppo.reward_aggregation != "mean":
            raise ValueError(
                f"ppo.reward_aggregation {self.ppo.reward_aggregation} aggregates a reward model's "
                "ensemble, but ppo_reward is rules: use reward_model or both, or leave it at mean"
            )
        return self

    @model_validator(mode="after")
    def _one_way_to_choose(self) -> TrainStageSettings:
        if not self.algorithms:
            return self
        if len(set(self.algorithms)) != len(self.algorithms) or len(self.algorithms) < 2:
            raise ValueError(
                f"algorithms races two or more different algorithms, not {list(self.algorithms)}: "
                "for one, use algorithm"
            )
        if "algorithm" in self.model_fields_set:
            raise ValueError("give algorithm (one policy) or algorithms (a race), not both")
        return self

    @property
    def policies(self) -> tuple[PolicyAlgorithm, ...]:
        """The policy algorithms the stage trains, in order (none, one, or a race's)."""
        if self.algorithms:
            return self.algorithms
        return () if self.algorithm == "none" else (self.algorithm,)


class EvaluateStageSettings(EvaluateSettings):
    """The evaluate stage's settings, and whether the pipeline runs it."""

    enabled: bool = True

    def stage(self) -> EvaluateSettings:
        return EvaluateSettings(**self.model_dump(exclude={"enabled"}))


class PipelineSettings(_Section):
    """What ``charter run`` does; relative paths are relative to the config file's folder."""

    store: str = "store"
    constitution: str
    prompts: PromptsSettings
    human_labels: list[LabelFileSettings] = []
    policy_model: ModelSettings = ModelSettings()
    # The judge's model; by default the policy's (the same engine serves both).
    judge_model: ModelSettings | None = None
    generate: GenerateSettings = GenerateSettings()
    critique: CritiqueStageSettings = CritiqueStageSettings()
    label: LabelSettings = LabelSettings()
    # Optional: the labels of `constitution`'s changed principles judged again against an older
    # version of it (`impact: {against: OLD.yaml}`); without it the impact stage does nothing.
    impact: ImpactStageSettings | None = None
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
    ("critique", "few_shot_path"),
    ("label", "judge", "template_path"),
    ("impact", "against"),
    ("evaluate", "stress"),
)


def load_pipeline_config(path: str | Path) -> PipelineSettings:
    """Parse, validate and resolve a pipeline config; every problem names the file, line and key."""
    source = str(path)
    document = load_located_yaml(read_input_text(path), source)
    config = validate_located(PipelineSettings, document, source)
    config = _resolved(config, Path(path).resolve().parent, document, source)
    _build_derived(config, document, source)
    return config


def _derived(config: PipelineSettings) -> list[tuple[Location, Callable[[], object]]]:
    """What the stages build from the config, each with the key it comes from.

    A stage's objects refuse some values its section accepts (rules across sections, a file a
    key names, a combination a backend or trainer cannot run), so they are all built at load
    time: every file the run reads is parsed, every backend and runner choice checked.
    """
    evaluation = {"constitution_path": config.constitution, "prompt_set": config.prompts.set_name}
    return [
        ((), partial(preflight, [config.constitution], [config.prompts.file], list(config.human_labels))),
        (("prompts", "families"), partial(_check_families, config.prompts)),
        (("policy_model",), config.policy_model.spec),
        *([(("judge_model",), config.judge_model.spec)] if config.judge_model else []),
        (("generate",), lambda: SamplingSettings(**config.generate.sampling_values())),
        (("critique",), lambda: config.critique.stage().config()),
        (("label", "judge"), config.label.judge.template),
        *([(("impact", "against"), partial(load_constitution, config.impact.old_constitution))]
          if config.impact else []),
        *((("label", "pairs", index), partial(config.label.pair_settings, mode))
          for index, mode in enumerate(config.label.pairs)),
        (("merge",), config.merge_policy),
        (("policy_model", "backend"), partial(_check_trainable, config)),
        (("train", "sft", "enabled"), partial(_check_sft_source, config)),
        *((("train", name, "report_to"), partial(check_report_to, getattr(config.train, name).report_to))
          for name in ("reward_model", "dpo", "ppo", "grpo", "sft")),
        (("evaluate",), lambda: EvaluationSettings(**evaluation, **config.evaluate.stage().model_dump())),
        *([(("evaluate", "stress"), partial(_check_stress, config))] if config.evaluate.stress else []),
        (("runner",), partial(check_runnable, config.runner)),
    ]  # fmt: skip


def _build_derived(config: PipelineSettings, document: LocatedDocument, source: str) -> None:
    """Build every derived object; all their problems in one :class:`InputError`, named by file, line, key."""
    problems: list[Problem] = []
    for location, build in _derived(config):
        try:
            build()
        except InputError as exc:  # a file the config names: its problems point into that file
            problems.extend(exc.problems)
        except ValidationError as exc:
            for error in exc.errors():
                inner = (*location, *error["loc"])
                problems.append(_located(document, source, inner, plain_message(PipelineSettings, error)))
        except (CharterError, ValueError) as exc:
            problems.append(_located(document, source, location, str(exc)))
    if problems:
        raise InputError(problems)


def _located(document: LocatedDocument, source: str, location: Location, message: str) -> Problem:
    return Problem(
        path=source, line=document.line_of(location), field=dotted_path(location) or None, message=message
    )


def _check_families(prompts: PromptsSettings) -> None:
    """Each family named must have prompts in the file, or its stages would silently run on none."""
    if not prompts.families:
        return
    try:
        known = {record.family for record in load_prompt_set(prompts.file)}
    except InputError:
        return  # the file's own problems are preflight's to report
    unknown = [family for family in prompts.families if family not in known]
    if unknown:
        raise ValueError(
            f"no prompts of family {', '.join(unknown)} in {prompts.file}; "
            f"its families: {', '.join(sorted(str(family) for family in known))}"
        )


def _check_stress(config: PipelineSettings) -> None:
    """The stress set must be valid against the constitution and never trained on: no prompt of
    the prompt set the run ingests (and trains on) may share its id or its text (the last user
    turn, so a stress conversation built around a training message counts too) with one of it."""
    stress = load_stress_set(str(config.evaluate.stress), load_constitution(config.constitution))
    try:
        trained = load_prompt_set(config.prompts.file)
    except InputError:
        return  # the file's own problems are preflight's to report
    ids, texts = {r.source_id for r in trained}, {r.text for r in trained}
    shared = [
        item.source_id
        for item in stress
        if item.source_id in ids or item.prompt.messages[-1]["content"] in texts
    ]
    if shared:
        raise ValueError(
            f"{len(shared)} of the {len(stress)} prompts of {config.evaluate.stress} share an id or a text "
            f"with the prompts file {config.prompts.file} (first: {shared[0]}): a stress set must be one "
            "the model never trains on"
        )


def _check_trainable(config: PipelineSettings) -> None:
    """Training changes the policy model's weights, which a model served over HTTP does not give."""
    trains = [*config.train.policies, *(["sft"] if config.train.sft.enabled else [])]
    if trains and config.policy_model.backend == "openai":
        raise ValueError(
            f"backend openai serves the policy model over HTTP, but train ({', '.join(trains)}) trains its "
            "weights: give a local policy model, or set train.algorithm: none and train.sft.enabled: false"
        )


def _check_sft_source(config: PipelineSettings) -> None:
    """SL-CAI learns from the critique stage's revisions: without that stage there are none."""
    if config.train.sft.enabled and not config.critique.enabled:
        raise ValueError(
            "train.sft trains on the critique stage's revisions, but critique.enabled is false: "
            "enable critique or turn sft off"
        )


def _resolved(
    config: PipelineSettings, base: Path, document: LocatedDocument, source: str
) -> PipelineSettings:
    """Relative paths made absolute against ``base``; a missing file is an error naming its key."""
    problems: list[Problem] = []

    def resolve(value: str, location: Location) -> str:
        resolved = (base / value).resolve()
        if not resolved.is_file():
            problems.append(_located(document, source, location, f"no such file: {resolved}"))
        return str(resolved)

    data = config.model_dump()
    for location in _PATH_KEYS:
        parent = data
        for part in location[:-1]:
            parent = parent[part]
        if parent and parent.get(location[-1]):  # an optional section may be absent
            parent[location[-1]] = resolve(parent[location[-1]], location)
    for index, spec in enumerate(data["human_labels"]):
        spec["path"] = resolve(spec["path"], ("human_labels", index, "path"))
    data["store"] = str((base / config.store).resolve())
    if config.report_dir:
        data["report_dir"] = str((base / config.report_dir).resolve())
    if problems:
        raise InputError(problems)
    return PipelineSettings.model_validate(data)
