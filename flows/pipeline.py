"""The pipeline flow: every stage from one config, as subflows, in one process, then the report.

Each stage is the same flow its single-stage command runs, and each is content-addressed
(batches already in the store, an existing preference set, a finished checkpoint or
scoreboard are found and skipped), so a rerun after a crash resumes where the crash hit.
One process also means one model engine: generation, critique and judging share it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from flows.critique import critique
from flows.generate import generate
from flows.ingest import ingest
from flows.label import label
from flows.merge import merge
from flows.train import evaluate, train_dpo, train_ppo, train_reward
from tasks.core.errors import CharterError
from tasks.label.pairs import PairSettings
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


@flow(name="pipeline")
def pipeline(
    config: str = DEFAULT_CONFIG, stages: list[Stage] | None = None, store: str | None = None
) -> dict:
    """Run ``stages`` (default: all) of the pipeline ``config`` describes; ``store`` overrides its store."""
    settings = load_pipeline_config(config)
    if store:
        settings = settings.model_copy(update={"store": store})
    chosen = [stage for stage in STAGES if stages is None or stage in stages]
    target = Store.create(settings.store)
    logger = get_run_logger()
    state = _PipelineState(settings)
    records: list[StageRecord] = []
    parameters = {"config": config, "stages": chosen, "settings": settings.model_dump(mode="json")}
    with (
        recorded_run(target, "pipeline", parameters, run_id=flow_run.get_id()) as run,
        runner_session(settings.runner),
    ):
        run.add_input(config)
        for stage in chosen:
            if stage == "train":
                release_models()  # the generation engine's memory and threads go to training
            started = time.perf_counter()
            result = _STAGE_RUNNERS[stage](state)
            record = _record(stage, time.perf_counter() - started, result)
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
    return {
        "run_id": run.run_id,
        "stages": [asdict(record) for record in records],
        "set_id": state.set_id,
        "reward_checkpoint": state.reward_checkpoint,
        "policy_checkpoint": state.policy_checkpoint,
        "report_html": str(paths.html),
        "report_markdown": str(paths.markdown),
    }


class _PipelineState:
    """What later stages need from earlier ones (or, when those did not run, from the store)."""

    def __init__(self, config: PipelineSettings):
        self.config = config
        self.set_id: str | None = None
        self.reward_checkpoint: str | None = None
        self.policy_checkpoint: str | None = None

    @property
    def store(self) -> str:
        return self.config.store

    def latest_set(self) -> str:
        return self.set_id or read_set(Store.existing(self.store), None)[0]

    def latest(self, kinds: tuple[str, ...]) -> str | None:
        found = latest_checkpoint(self.store, kinds)
        return str(found) if found else None


def _ingest(state: _PipelineState) -> dict[str, Any]:
    config = state.config
    return ingest(
        store=state.store,
        constitutions=[config.constitution],
        prompt_sets=[config.prompts.file],
        label_files=list(config.human_labels),
    )


def _selection(config: PipelineSettings) -> dict[str, Any]:
    return {
        "prompts": config.prompts.set_name,
        "families": config.prompts.families,
        "limit": config.prompts.limit,
    }


def _generate(state: _PipelineState) -> dict[str, Any]:
    config = state.config
    return generate(
        store=state.store,
        backend=config.policy_model.spec(),
        runner=config.runner,
        **config.generate.model_dump(),
        **{**_selection(config), "prompts": config.prompts.file},  # a file: imported if it is new
    )


def _critique(state: _PipelineState) -> dict[str, Any]:
    config = state.config
    if not config.critique.enabled:
        return {"skipped_stage": "critique disabled in the config"}
    return critique(
        store=state.store,
        constitution=config.constitution,
        backend=config.policy_model.spec(),
        settings=config.critique.settings,
        batch_size=config.critique.batch_size,
        runner=config.runner,
        **_selection(config),
    )


def _label(state: _PipelineState) -> dict[str, Any]:
    """One label run per pair mode; the human mode judges the labelled pairs, whatever the selection."""
    config = state.config
    totals: dict[str, Any] = {"rows_added": {}, "batches_skipped": 0, "pairs": 0}
    for mode in config.label.pairs:
        selection = _selection(config) if mode != "human" else {}
        result = label(
            store=state.store,
            constitution=config.constitution,
            backend=config.judge_spec,
            pairs=PairSettings(mode=mode, per_prompt=config.label.per_prompt, seed=config.label.judge.seed),
            judge=config.label.judge,
            batch_size=config.label.batch_size,
            runner=config.runner,
            **selection,
        )
        for table, rows in result["rows_added"].items():
            totals["rows_added"][table] = totals["rows_added"].get(table, 0) + rows
        totals["batches_skipped"] += result["batches_skipped"]
        totals["pairs"] += result["pairs"]
    totals["detail"] = f"{totals['pairs']} pairs in {len(config.label.pairs)} modes"
    return totals


def _merge(state: _PipelineState) -> dict[str, Any]:
    config = state.config
    result = merge(store=state.store, policy=config.merge_policy(), policy_path=config.merge.policy_file)
    state.set_id = result["set_id"]
    rows = read_set(Store.existing(state.store), state.set_id)[1]
    export = Path(state.store) / "exports" / "preferences.jsonl"
    write_records(preference_set_records(rows), export, "jsonl")
    dropped = ", ".join(f"{n} {why}" for why, n in sorted(result["dropped"].items())) or "none dropped"
    result["detail"] = f"preference set {state.set_id[:12]}: {result['rows']} rows ({dropped}); {export}"
    return result


def _train(state: _PipelineState) -> dict[str, Any]:
    config, train = state.config, state.config.train
    if train.algorithm == "none":
        return {"skipped_stage": "training disabled in the config"}
    set_id = state.latest_set()
    reward = train_reward(store=state.store, set_id=set_id, config=train.reward_model)
    state.reward_checkpoint = reward["path"]
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
            reward_model=reward["path"] if train.ppo_reward != "rules" else None,
            rules=config.constitution if train.ppo_reward != "reward_model" else None,
        )
    state.policy_checkpoint = policy["path"]
    reused = [name for name, result in (("reward", reward), (train.algorithm, policy)) if result["reused"]]
    return {
        "detail": f"reward model {Path(reward['path']).name}, {train.algorithm} {Path(policy['path']).name}"
        + (f" (reused: {', '.join(reused)})" if reused else ""),
        "batches_skipped": len(reused),
    }


def _evaluate(state: _PipelineState) -> dict[str, Any]:
    config = state.config
    if not config.evaluate.enabled:
        return {"skipped_stage": "evaluation disabled in the config"}
    state.policy_checkpoint = state.policy_checkpoint or state.latest(("dpo", "ppo"))
    state.reward_checkpoint = state.reward_checkpoint or state.latest(("reward",))
    if state.policy_checkpoint is None:
        raise CharterError(f"nothing to evaluate: no dpo or ppo checkpoint in {state.store}/checkpoints")
    report = evaluate(
        store=state.store,
        checkpoint=state.policy_checkpoint,
        constitution=config.constitution,
        prompts=config.prompts.set_name,
        per_family=config.evaluate.per_family,
        reward_model=state.reward_checkpoint,
        use_judge=config.evaluate.judge,
        max_tokens=config.evaluate.max_tokens,
        seed=config.evaluate.seed,
    )
    return {"detail": f"{report['prompts']} held-out prompts"}


_STAGE_RUNNERS: dict[str, Callable[[_PipelineState], dict[str, Any]]] = {
    "ingest": _ingest,
    "generate": _generate,
    "critique": _critique,
    "label": _label,
    "merge": _merge,
    "train": _train,
    "evaluate": _evaluate,
}


def _record(stage: str, seconds: float, result: dict[str, Any]) -> StageRecord:
    return StageRecord(
        name=stage,
        seconds=round(seconds, 2),
        rows_added=dict(result.get("rows_added", {})),
        skipped=int(result.get("batches_skipped", 0)),
        detail=result.get("detail") or result.get("skipped_stage", ""),
    )
