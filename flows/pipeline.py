"""The pipeline flow: every stage from one config, as subflows, in one process, then the report.

Each stage is the same flow its single-stage command runs, and each is content-addressed
(batches already in the store, an existing preference set, a finished checkpoint or
scoreboard are found and skipped), so a rerun after a crash resumes where the crash hit.
One process also means one model engine: generation, critique and judging share it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from flows.critique import critique
from flows.generate import generate
from flows.impact import impact
from flows.ingest import ingest
from flows.label import label
from flows.merge import merge
from flows.pipeline_state import PipelineState, StageOutcome
from flows.pipeline_training import evaluate_stage, train_stage
from tasks.backends.settings import concrete
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
    state = PipelineState(settings)
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


def _ingest(state: PipelineState) -> StageOutcome:
    config = state.config
    result = ingest(
        store=state.store,
        constitutions=[config.constitution],
        prompt_sets=[config.prompts.file],
        label_files=list(config.human_labels),
    )
    return StageOutcome(dict(result.rows_added))


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


def _selection(state: PipelineState) -> dict[str, str | list[str] | int | None]:
    prompts = state.config.prompts
    if state.selection is not None:
        return {"prompts": prompts.set_name, "prompt_ids": list(state.selection.prompt_ids)}
    return {"prompts": prompts.set_name, "families": prompts.families, "limit": prompts.limit}


def _generate(state: PipelineState) -> StageOutcome:
    config = state.config
    if state.nothing_selected:
        return StageOutcome(detail=_NOTHING_SELECTED)
    result = generate(
        store=state.store,
        backend=config.policy_model.spec(),
        settings=config.generate,
        runner=config.runner,
        **{**_selection(state), "prompts": config.prompts.file},  # a file: imported if it is new
    )
    return StageOutcome.of(result)


def _critique(state: PipelineState) -> StageOutcome:
    config = state.config
    if not config.critique.enabled:
        return StageOutcome(detail="critique disabled in the config")
    if state.nothing_selected:
        return StageOutcome(detail=_NOTHING_SELECTED)
    result = critique(
        store=state.store,
        constitution=config.constitution,
        backend=config.policy_model.spec(),
        settings=config.critique.stage(),
        runner=config.runner,
        **_selection(state),
    )
    return StageOutcome.of(result)


def _label(state: PipelineState) -> StageOutcome:
    """One label run per pair mode; the human mode judges the labelled pairs, whatever the selection."""
    config = state.config
    rows_added: dict[str, int] = {}
    skipped = pairs = 0
    modes = [mode for mode in config.label.pairs if mode == "human" or not state.nothing_selected]
    if not modes:
        return StageOutcome(detail=_NOTHING_SELECTED)
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
    return StageOutcome(rows_added, skipped, f"{pairs} pairs in {len(modes)} modes")


def _impact(state: PipelineState) -> StageOutcome:
    """The config's constitution against ``impact.against``, judged as the label stage judges,
    merged under the merge stage's policy."""
    config = state.config
    if config.impact is None:
        return StageOutcome(detail="no impact section in the config")
    result = impact(
        store=state.store,
        constitution=config.constitution,
        against=config.impact.old_constitution,
        backend=config.judge_spec,
        judge=config.label.judge,
        policy=config.merge_policy(),
        batch_size=config.impact.batch_size,
    )
    return StageOutcome.of(result, detail=f"report {result.report_html}")


def _merge(state: PipelineState) -> StageOutcome:
    config = state.config
    result = merge(store=state.store, policy=config.merge_policy(), policy_path=config.merge.policy_file)
    state.set_id = result.set_id
    rows = read_set(Store.existing(state.store), state.set_id)[1]
    export = Path(state.store) / "exports" / "preferences.jsonl"
    write_records(preference_set_records(rows), export, "jsonl")
    dropped = ", ".join(f"{n} {why}" for why, n in sorted(result.dropped.items())) or "none dropped"
    detail = f"preference set {state.set_id[:12]}: {result.rows} rows ({dropped}); {export}"
    return StageOutcome(dict(result.rows_added), detail=detail)


_STAGE_RUNNERS: dict[str, Callable[[PipelineState], StageOutcome]] = {
    "ingest": _ingest,
    "generate": _generate,
    "critique": _critique,
    "label": _label,
    "impact": _impact,
    "merge": _merge,
    "train": train_stage,
    "evaluate": evaluate_stage,
}
