"""The data stages: ``generate``, ``critique`` and ``label``, each a resumable Prefect flow.

Their settings options come from the stage's settings model (:mod:`flows.cli.options`);
every input is checked (files, backend, server) before Prefect starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flows.cli.common import (
    BatchPlacement,
    PromptSelection,
    backend_options,
    checked_backend,
    out,
    prefect_environment,
    progress,
)
from flows.cli.options import Flag, Options, settings_options
from flows.cli.store_option import DEFAULT_STORE_PATH, StoreOption
from tasks.backends.settings import BackendSettings, choose_kind
from tasks.constitution.model import load_constitution
from tasks.core.errors import CharterError
from tasks.critique.settings import CritiqueSettings
from tasks.generate.selection import SelectionSettings
from tasks.generate.settings import GenerateSettings
from tasks.label.judge import JudgeSettings
from tasks.label.pairs import PairSettings
from tasks.label.settings import LabelSettings

app = typer.Typer()


def critique_options(skip: tuple[str, ...] = (), few_shot_help: str | None = None) -> Options:
    """A critique run's settings as options (``export`` repeats them to find the run's chains)."""
    few_shot = Flag(names=("--few-shot",), path=True, help=few_shot_help)
    return Options(CritiqueSettings, skip=skip, flags={"few_shot_path": few_shot})


@app.command()
@settings_options(
    backend=backend_options(),
    settings=Options(GenerateSettings, flags={"n": Flag(names=("-n", "--n"))}),
    picking=Options(
        SelectionSettings, flags={"seed": Flag(names=("--sample-seed",), parameter="sample_seed")}
    ),
    selection=Options(PromptSelection),
    placement=Options(BatchPlacement),
)
def generate(
    prompts: Annotated[
        str, typer.Option(help="Prompt-set JSONL file, or the name of a prompt set in the store.")
    ],
    backend: BackendSettings,
    settings: GenerateSettings,
    picking: SelectionSettings,
    selection: PromptSelection,
    placement: BatchPlacement,
    store: StoreOption = DEFAULT_STORE_PATH,
) -> None:
    """Sample N candidate responses per prompt into the generations table (resumable)."""
    from tasks.ingest.label_files import preflight

    if Path(prompts).is_file():
        preflight([], [prompts], [])
    spec = checked_backend(backend)
    where = placement.checked()
    prefect_environment()
    from flows.generate import generate as generate_flow

    total = (selection.limit or _prompt_count(store, prompts, selection.family)) * settings.n
    with progress(store, "generations", total, "generating"):
        result = generate_flow(
            store=str(store),
            prompts=prompts,
            backend=spec,
            settings=settings,
            families=selection.family,
            limit=selection.limit,
            runner=where,
            selection=picking,
        )
    if result.selected:
        out.print(result.selected, markup=False, highlight=False)
    out.print(
        f"[green]generate complete[/green] (run {result.run_id}): {result.prompts} prompts, "
        f"{result.batches} batches ({result.batches_skipped} already done), "
        f"generations +{result.added('generations')}"
    )


@app.command()
@settings_options(
    backend=backend_options("Critic"),
    settings=critique_options(),
    selection=Options(PromptSelection),
    placement=Options(BatchPlacement),
)
def critique(
    prompts: Annotated[
        str, typer.Option(help="Prompt set (name in the store) whose generations to critique.")
    ],
    constitution: Annotated[Path, typer.Option(help="Constitution YAML whose principles are sampled.")],
    backend: BackendSettings,
    settings: CritiqueSettings,
    selection: PromptSelection,
    placement: BatchPlacement,
    store: StoreOption = DEFAULT_STORE_PATH,
) -> None:
    """Critique and revise generations against sampled principles into the critiques table (resumable)."""
    from tasks.generate.generation import generations_of, select_prompts
    from tasks.store.store import Store

    load_constitution(constitution)
    settings.config()  # validates the few-shot file before any work
    spec = checked_backend(backend)
    where = placement.checked()
    prefect_environment()
    from flows.critique import critique as critique_flow

    selected = select_prompts(
        Store.existing(store), prompts, families=selection.family, limit=selection.limit
    )
    total = len(generations_of(Store(store), selected)) * settings.rounds
    with progress(store, "critiques", total, "critiquing"):
        result = critique_flow(
            store=str(store),
            prompts=prompts,
            constitution=str(constitution),
            backend=spec,
            settings=settings,
            families=selection.family,
            limit=selection.limit,
            runner=where,
        )
    out.print(
        f"[green]critique complete[/green] (run {result.run_id}): {result.generations} generations, "
        f"{result.batches} batches ({result.batches_skipped} already done), "
        f"critiques +{result.added('critiques')}"
    )


@app.command()
@settings_options(
    pairs=Options(PairSettings, flags={"mode": Flag(names=("--pairs",))}),
    judge=Options(
        JudgeSettings,
        flags={
            "methods": Flag(names=("--method",)),
            "template_path": Flag(names=("--template",), path=True),
        },
    ),
    backend=backend_options("Judge"),
    stage=Options(LabelSettings, only=("batch_size",)),
    selection=Options(PromptSelection),
    placement=Options(BatchPlacement),
)
def label(
    constitution: Annotated[Path, typer.Option(help="Constitution YAML whose principles the judge reads.")],
    prompts: Annotated[
        str | None, typer.Option(help="Prompt set whose responses to pair (modes all, revision).")
    ] = None,
    *,
    pairs: PairSettings,
    judge: JudgeSettings,
    backend: BackendSettings,
    stage: LabelSettings,
    selection: PromptSelection,
    placement: BatchPlacement,
    store: StoreOption = DEFAULT_STORE_PATH,
) -> None:
    """Label response pairs with the AI judge (both orders, soft labels) and the constitution's rules."""
    load_constitution(constitution)
    judge.template()  # a bad template fails here, before any work
    if pairs.mode != "human" and not prompts:
        raise CharterError(f"--pairs {pairs.mode} needs --prompts (the prompt set whose responses to pair)")
    if set(judge.methods) == {"rule"}:  # no model runs: nothing to load or check
        spec = backend.model_copy(update={"kind": choose_kind(backend.kind)[0]})
    else:
        spec = checked_backend(backend)
    where = placement.checked()
    prefect_environment()
    from flows.label import label as label_flow

    result = label_flow(
        store=str(store),
        constitution=str(constitution),
        prompts=prompts,
        backend=spec,
        pairs=pairs,
        judge=judge,
        batch_size=stage.batch_size,
        families=selection.family,
        limit=selection.limit,
        runner=where,
    )
    skipped = ", ".join(f"{n} {why}" for why, n in result.skipped.items())
    out.print(
        f"[green]label complete[/green] (run {result.run_id}): {result.pairs} pairs"
        f"{f' ({skipped} skipped)' if skipped else ''}, {result.batches} judge batches "
        f"({result.batches_skipped} already done), ai_labels +{result.added('ai_labels')}"
    )


def _prompt_count(store: Path, prompts: str, families: list[str] | None) -> int:
    """How many prompts a run will cover, for the progress bar's total."""
    from tasks.generate.generation import select_prompts
    from tasks.ingest.prompt_sets import load_prompt_set
    from tasks.store.store import Store

    if Path(prompts).is_file():
        return sum(1 for p in load_prompt_set(prompts) if not families or p.family in families)
    return len(select_prompts(Store.existing(store), prompts, families=families))
