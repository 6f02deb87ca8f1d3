"""The pipeline flow: every stage from one config, as subflows, in one process, then the report.

Each stage is the same flow its single-stage command runs, and each is content-addressed
(batches already in the store, an existing preference set, a finished checkpoint or
scoreboard are found and skipped), so a rerun after a crash resumes where the crash hit.
One process also means one model engine: generation, critique and judging share it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from flows.critique import critique
from flows.generate import generate
from flows.impact import impact
from flows.ingest import ingest
from flows.label import label
from flows.merge import merge
from flows.results import BatchedResult
from flows.train import evaluate_policy, train_dpo, train_ppo, train_reward
from tasks.backends.settings import concrete
from tasks.core.errors import CharterError
from tasks.generate.prefect_tasks import choose_prompts
from tasks.generate.selection import Selection, SelectionSettings
from tasks.merge.preference_sets import read_set
from tasks.orchestration.pipeline_config import STAGES, PipelineSettings, Stage, load_pipeline_config
from tasks.orchestration.prefect_tasks import release_models, write_run_report
from tasks.orchestration.runners import runner_session
from tasks.report.report import StageRecord
from tasks.store.exports import preference_set_records, write_records
from tasks.store.runs import recorded_run
from tasks.store.store import Store
from tasks.train.lineage import latest_checkpoint

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = str(PROJECT_ROOT / "datasets" / "healthcare-scheduling" / "pipeline.yaml")


@dataclass(frozen=True, kw_only=True)
class PipelineResult:
    run_id: str
    stages: list[StageRecord]
    set_id: str | None
    reward_checkpoint: str | None
    policy_checkpoint: str | None
    report_html: str
    report_markdown: str


# The stages that work on the selected prompts (train and evaluate use the whole set), and what
# each reports when the selection took none (the selection's own line says why, once).
_SELECTED_STAGES = ("generate", "critique", "label")
_NOTHING_SELECTED = "no prompts selected: nothing to do"


@flow(name="pipeline")
def pipeline(
    config: str = DEFAULT_CONFIG,
    stages: list[Stage] | None = None,
    store: str | None = None,
    selection: SelectionSettings | None = None,
) -> PipelineResult:
    """Run ``stages`` (default: all) of the pipeline ``config`` describes; ``store`` overrides its
    store, ``selection`` its ``prompts.select`` and ``prompts.seed`` (so the nightly deployment
    takes unseen prompts from the config the on-demand one runs)."""
    settings = load_pipeline_config(config)
    if store:
        settings = settings.model_copy(update={"store": store})
    if selection:
        prompts = settings.prompts.model_copy(update=selection.model_dump())
        settings = settings.model_copy(update={"prompts": prompts})
    chosen = [stage for stage in STAGES if stages is None or stage in stages]
    target = Store.create(settings.store)
    logger = get_run_logger()
    state = _PipelineState(settings)
    records: list[StageRecord] = []
    parameters = {"config": config, "stages": chosen, "settings": settings.model_dump(mode="json")}
    if settings.prompts.select != "all" and set(_SELECTED_STAGES) & set(chosen):
        state.selection = _resolved_selection(settings, str(target.root), chosen)
        parameters["selection"] = state.selection.record()  # at the start: a killed run is resumed
        logger.info("%s", state.selection.summary)
    with (
        recorded_run(target, "pipeline", parameters, run_id=flow_run.get_id()) as run,
        runner_session(settings.runner),
    ):
        run.add_input(config)
        for stage in chosen:
            if stage == "train":
                release_models()  # the generation engine's memory and threads go to training
            started = time.perf_counter()
            outcome = _STAGE_RUNNERS[stage](state)
            record = outcome.record(stage, time.perf_counter() - started)
            logger.info("stage %s: %.1f s, %s", stage, record.seconds, record.detail or record.rows_added)
            records.append(record)
            for table, rows in record.rows_added.items():
                run.rows_added[table] += rows
        release_models()
        report_dir = Path(settings.report_dir or Path(settings.store) / "reports") / run.run_id
        paths = write_run_report(
            str(target.root),
            str(report_dir),
            title=f"charter run {run.run_id[:8]}: {Path(config).name}",
            stages=records,
            reward_checkpoint=state.reward_checkpoint,
            policy_checkpoint=state.policy_checkpoint,
        )
    return PipelineResult(
        run_id=run.run_id,
        stages=records,
        set_id=state.set_id,
        reward_checkpoint=state.reward_checkpoint,
        policy_checkpoint=state.policy_checkpoint,
        report_html=str(paths.html),
        report_markdown=str(paths.markdown),
    )


@dataclass(frozen=True)
class _StageOutcome:
    """What one stage did, for the report: rows added, units skipped as already done, a summary."""

    rows_added: dict[str, int] = field(default_factory=dict)
    skipped: int = 0
    detail: str = ""

    @classmethod
    def of(cls, result: BatchedResult, detail: str = "") -> _StageOutcome:
        return cls(dict(result.rows_added), result.batches_skipped, detail)

    def record(self, stage: str, seconds: float) -> StageRecord:
        return StageRecord(
            name=stage,
            seconds=round(seconds, 2),
            rows_added=self.rows_added,
            skipped=self.skipped,
            detail=self.detail,
        )


class _PipelineState:
    """What later stages need from earlier ones (or, when those did not run, from the store)."""

    def __init__(self, config: PipelineSettings):
        self.config = config
        self.selection: Selection | None = None  # None: select all, the config's families and limit
        self.set_id: str | None = None
        self.reward_checkpoint: str | None = None
        self.policy_checkpoint: str | None = None

    @property
    def store(self) -> str:
        return self.config.store

    @property
    def nothing_selected(self) -> bool:
        """The selection took no prompt (the set is exhausted): generate, critique and label skip."""
        return self.selection is not None and self.selection.exhausted

    def latest_set(self) -> str:
        return self.set_id or read_set(Store.existing(self.store), None)[0]

    def latest(self, kinds: tuple[str, ...]) -> str | None:
        found = latest_checkpoint(self.store, kinds)
        return str(found) if found else None


def _ingest(state: _PipelineState) -> _StageOutcome:
    config = state.config
    result = ingest(
        store=state.store,
        constitutions=[config.constitution],
        prompt_sets=[config.prompts.file],
        label_files=list(config.human_labels),
    )
    return _StageOutcome(dict(result.rows_added))


def _resolved_selection(config: PipelineSettings, store_root: str, stages: list[str]) -> Selection:
    """The prompts generate, critique and label all take, resolved once before the run starts."""
    prompts = config.prompts
    return choose_prompts(
        store_root,
        prompts.file,
        prompts.selection(),
        concrete(config.policy_model.spec()),
        config.generate.sampling_values(),
        prompts.families,
        prompts.limit,
        "pipeline",
        {"stages": stages},
    )


def _selection(state: _PipelineState) -> dict[str, str | list[str] | int | None]:
    prompts = state.config.prompts
    if state.selection is not None:
        return {"prompts": prompts.set_name, "prompt_ids": list(state.selection.prompt_ids)}
    return {"prompts": prompts.set_name, "families": prompts.families, "limit": prompts.limit}


def _generate(state: _PipelineState) -> _StageOutcome:
    config = state.config
    if state.nothing_selected:
        return _StageOutcome(detail=_NOTHING_SELECTED)
    result = generate(
        store=state.store,
        backend=config.policy_model.spec(),
        settings=config.generate,
        runner=config.runner,
        **{**_selection(state), "prompts": config.prompts.file},  # a file: imported if it is new
    )
    return _StageOutcome.of(result)


def _critique(state: _PipelineState) -> _StageOutcome:
    config = state.config
    if not config.critique.enabled:
        return _StageOutcome(detail="critique disabled in the config")
    if state.nothing_selected:
        return _StageOutcome(detail=_NOTHING_SELECTED)
    result = critique(
        store=state.store,
        constitution=config.constitution,
        backend=config.policy_model.spec(),
        settings=config.critique.stage(),
        runner=config.runner,
        **_selection(state),
    )
    return _StageOutcome.of(result)


def _label(state: _PipelineState) -> _StageOutcome:
    """One label run per pair mode; the human mode judges the labelled pairs, whatever the selection."""
    config = state.config
    rows_added: dict[str, int] = {}
    skipped = pairs = 0
    modes = [mode for mode in config.label.pairs if mode == "human" or not state.nothing_selected]
    if not modes:
        return _StageOutcome(detail=_NOTHING_SELECTED)
    for mode in modes:
        selection = _selection(state) if mode != "human" else {}
        result = label(
            store=state.store,
            constitution=config.constitution,
            backend=config.judge_spec,
            pairs=config.label.pair_settings(mode),
            judge=config.label.judge,
            batch_size=config.label.batch_size,
            runner=config.runner,
            **selection,
        )
        for table, rows in result.rows_added.items():
            rows_added[table] = rows_added.get(table, 0) + rows
        skipped += result.batches_skipped
        pairs += result.pairs
    return _StageOutcome(rows_added, skipped, f"{pairs} pairs in {len(modes)} modes")


def _impact(state: _PipelineState) -> _StageOutcome:
    """The config's constitution against ``impact.against``, judged as the label stage judges,
    merged under the merge stage's policy."""
    config = state.config
    if config.impact is None:
        return _StageOutcome(detail="no impact section in the config")
    result = impact(
        store=state.store,
        constitution=config.constitution,
        against=config.impact.old_constitution,
        backend=config.judge_spec,
        judge=config.label.judge,
        policy=config.merge_policy(),
        batch_size=config.impact.batch_size,
    )
    return _StageOutcome.of(result, detail=f"report {result.report_html}")


def _merge(state: _PipelineState) -> _StageOutcome:
    config = state.config
    result = merge(store=state.store, policy=config.merge_policy(), policy_path=config.merge.policy_file)
    state.set_id = result.set_id
    rows = read_set(Store.existing(state.store), state.set_id)[1]
    export = Path(state.store) / "exports" / "preferences.jsonl"
    write_records(preference_set_records(rows), export, "jsonl")
    dropped = ", ".join(f"{n} {why}" for why, n in sorted(result.dropped.items())) or "none dropped"
    detail = f"preference set {state.set_id[:12]}: {result.rows} rows ({dropped}); {export}"
    return _StageOutcome(dict(result.rows_added), detail=detail)


def _train(state: _PipelineState) -> _StageOutcome:
    config, train = state.config, state.config.train
    if train.algorithm == "none":
        return _StageOutcome(detail="training disabled in the config")
    set_id = state.latest_set()
    reward = train_reward(store=state.store, set_id=set_id, config=train.reward_model)
    state.reward_checkpoint = reward.path
    if train.algorithm == "dpo":
        policy = train_dpo(
            store=state.store, set_id=set_id, model=config.policy_model.model, settings=train.dpo
        )
    else:
        policy = train_ppo(
            store=state.store,
            prompts=config.prompts.set_name,
            model=config.policy_model.model,
            config=train.ppo,
            reward_model=reward.path if train.ppo_reward != "rules" else None,
            rules=config.constitution if train.ppo_reward != "reward_model" else None,
        )
    state.policy_checkpoint = policy.path
    reused = [name for name, result in (("reward", reward), (train.algorithm, policy)) if result.reused]
    detail = f"reward model {Path(reward.path).name}, {train.algorithm} {Path(policy.path).name}" + (
        f" (reused: {', '.join(reused)})" if reused else ""
    )
    return _StageOutcome(dict(reward.rows_added), skipped=len(reused), detail=detail)


def _evaluate(state: _PipelineState) -> _StageOutcome:
    config = state.config
    if not config.evaluate.enabled:
        return _StageOutcome(detail="evaluation disabled in the config")
    state.policy_checkpoint = state.policy_checkpoint or state.latest(("dpo", "ppo"))
    state.reward_checkpoint = state.reward_checkpoint or state.latest(("reward",))
    if state.policy_checkpoint is None:
        raise CharterError(f"nothing to evaluate: no dpo or ppo checkpoint in {state.store}/checkpoints")
    result = evaluate_policy(
        store=state.store,
        checkpoint=state.policy_checkpoint,
        constitution=config.constitution,
        prompts=config.prompts.set_name,
        reward_model=state.reward_checkpoint,
        settings=config.evaluate.stage(),
        judge_model=config.judge_spec,
    )
    stress = result.scoreboard.get("stress")
    on_stress = f", {stress['prompts']} stress prompts" if stress else ""
    return _StageOutcome(detail=f"{result.prompts} held-out prompts{on_stress}")


_STAGE_RUNNERS: dict[str, Callable[[_PipelineState], _StageOutcome]] = {
    "ingest": _ingest,
    "generate": _generate,
    "critique": _critique,
    "label": _label,
    "impact": _impact,
    "merge": _merge,
    "train": _train,
    "evaluate": _evaluate,
}
