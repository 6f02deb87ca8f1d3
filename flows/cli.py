"""The ``charter`` command line.

Commands that change the store run as Prefect flows (ephemeral mode unless
``PREFECT_API_URL`` points at a server); their inputs are validated first, so a bad
file fails in a second with its line and field, before Prefect starts. Read-only
commands (``sql``, ``audit``, ``constitution``) are plain functions and answer at once.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.panel import Panel
from rich.progress import Progress
from rich.table import Table
from rich.text import Text

from flows.render import OUTPUT_FORMATS, print_result, print_scoreboard, rich_table
from tasks.backends.models import resolve_model
from tasks.backends.server import check_server
from tasks.backends.settings import BackendSettings, choose_kind, concrete, model_identity
from tasks.constitution.diff import diff_constitutions
from tasks.constitution.importers import IMPORT_FORMATS, import_anthropic, slugify
from tasks.constitution.model import load_constitution
from tasks.core.errors import CharterError, InputError
from tasks.critique.plan import CritiqueSettings, chain_states
from tasks.generate.generation import generations_of, select_prompts
from tasks.ingest.human_labels import FORMATS
from tasks.ingest.label_files import LabelFileSettings, preflight
from tasks.ingest.prompt_sets import load_prompt_set
from tasks.label.judge import METHODS, JudgeSettings
from tasks.label.pairs import PAIR_MODES, PairSettings
from tasks.merge.policy import MergeSettings, load_merge_policy
from tasks.merge.preference_sets import read_set
from tasks.orchestration.deployments import FLOWS, check_cron, check_timezone, flow_path, next_run_times
from tasks.orchestration.runners import RUNNERS, runner_spec
from tasks.store.audit import audit_summary
from tasks.store.exports import FORMATS as EXPORT_FORMATS
from tasks.store.exports import (
    STYLES,
    preference_records,
    preference_set_records,
    sft_records,
    write_records,
)
from tasks.store.sql import run_query
from tasks.store.store import DEFAULT_STORE, Store
from tasks.train.lineage import SCOREBOARD_FILE, latest_checkpoint, read_lineage
from tasks.train.settings import DPOSettings, PPOSettings, RewardModelSettings

PROJECT_ROOT = Path(__file__).resolve().parent.parent

app = typer.Typer(
    name="charter",
    help="Constitutional and AI-feedback preference data: principles, labels, audits.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
constitution_app = typer.Typer(
    help="Validate, show, diff and import constitution files.", no_args_is_help=True
)
app.add_typer(constitution_app, name="constitution")

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

StoreOption = Annotated[
    Path,
    typer.Option(
        "--store", envvar="CHARTER_STORE", help="Store directory (default ./store or $CHARTER_STORE)."
    ),
]
RunnerOption = Annotated[
    str, typer.Option(help=f"Where batches run: {', '.join(RUNNERS)} (local: in order, in this process).")
]
RayAddressOption = Annotated[
    str | None,
    typer.Option(help="With --runner ray: ray://HOST:10001 or auto (default: $RAY_ADDRESS, else local Ray)."),
]


def _prefect_environment() -> None:
    """Defaults for running flows from the CLI, before Prefect is imported (users' settings win).

    This machine is offline (Prefect's telemetry only logs errors), and on a loaded 2-core
    machine the ephemeral API server can take longer than Prefect's default 20 s to start.
    """
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")


def _run_ingest(
    store: Path, constitutions: list[str], prompt_sets: list[str], label_files: list[LabelFileSettings]
) -> None:
    preflight(constitutions, prompt_sets, label_files)
    _prefect_environment()
    from flows.ingest import ingest  # Prefect is imported only for commands that run flows.

    result = ingest(
        store=str(store), constitutions=constitutions, prompt_sets=prompt_sets, label_files=label_files
    )
    added = ", ".join(f"{table} +{n}" for table, n in sorted(result["rows_added"].items())) or "nothing new"
    out.print(f"[green]ingest complete[/green] (run {result['run_id']}): {added}")
    for path in result["rejects"]:
        out.print(f"[yellow]rejected rows written to {path}[/yellow]")


def _bundled(pattern: str) -> list[str]:
    return [
        str(p.relative_to(Path.cwd()) if p.is_relative_to(Path.cwd()) else p)
        for p in sorted(PROJECT_ROOT.glob(pattern))
    ]


@app.command()
def ingest(
    store: StoreOption = Path(DEFAULT_STORE),
    constitution: Annotated[list[Path] | None, typer.Option(help="Constitution YAML (repeatable).")] = None,
    prompts: Annotated[list[Path] | None, typer.Option(help="Prompt set JSONL (repeatable).")] = None,
    labels: Annotated[
        list[Path] | None, typer.Option(help="Label file in charter's format (repeatable).")
    ] = None,
    hh_rlhf: Annotated[
        list[Path] | None, typer.Option("--hh-rlhf", help="hh-rlhf JSONL (repeatable).")
    ] = None,
    label_studio: Annotated[
        list[Path] | None, typer.Option("--label-studio", help="Label Studio JSON export (repeatable).")
    ] = None,
    bundled: Annotated[bool, typer.Option(help="With no files given, ingest the bundled samples.")] = True,
) -> None:
    """Import constitutions, prompt sets and label files in one Prefect flow run."""
    constitutions = [str(p) for p in constitution or []]
    prompt_sets = [str(p) for p in prompts or []]
    specs = [
        *(LabelFileSettings(path=str(p), format="charter") for p in labels or []),
        *(LabelFileSettings(path=str(p), format="hh-rlhf") for p in hh_rlhf or []),
        *(LabelFileSettings(path=str(p), format="label-studio") for p in label_studio or []),
    ]
    if bundled and not (constitutions or prompt_sets or specs):
        constitutions = _bundled("constitutions/*.yaml")
        prompt_sets = _bundled("datasets/*/prompts.jsonl")
        specs = [LabelFileSettings(path=p) for p in _bundled("datasets/*/human-labels.jsonl")]
        out.print(
            f"[dim]ingesting the bundled samples: {len(constitutions)} constitutions, "
            f"{len(prompt_sets)} prompt sets, {len(specs)} label files[/dim]"
        )
    if not (constitutions or prompt_sets or specs):
        raise CharterError("nothing to ingest: give --constitution, --prompts or a label file")
    _run_ingest(store, constitutions, prompt_sets, specs)


@app.command("import-labels")
def import_labels_command(
    file: Annotated[Path, typer.Argument(help="The label export to import.")],
    fmt: Annotated[str, typer.Option("--format", help=f"One of: {', '.join(FORMATS)}.")] = "charter",
    annotator: Annotated[str | None, typer.Option(help="Annotator for rows that do not name one.")] = None,
    family: Annotated[str | None, typer.Option(help="Prompt family for rows that do not name one.")] = None,
    skip_invalid: Annotated[
        bool, typer.Option("--skip-invalid", help="Write the good rows; bad rows go to a rejects file.")
    ] = False,
    store: StoreOption = Path(DEFAULT_STORE),
) -> None:
    """Import human pairwise labels (charter JSONL, hh-rlhf JSONL, Label Studio JSON)."""
    if fmt not in FORMATS:
        raise CharterError(f"unknown --format {fmt!r}; formats: {', '.join(FORMATS)}")
    spec = LabelFileSettings(
        path=str(file), format=fmt, annotator=annotator, family=family, skip_invalid=skip_invalid
    )
    _run_ingest(store, [], [], [spec])


@app.command()
def sql(
    query: Annotated[str, typer.Argument(help="One SELECT statement over the store's tables and views.")],
    fmt: Annotated[str, typer.Option("--format", help="table, csv or json.")] = "table",
    store: StoreOption = Path(DEFAULT_STORE),
) -> None:
    """Query the store with DuckDB SQL, read-only."""
    if fmt not in OUTPUT_FORMATS:
        raise CharterError(f"unknown --format {fmt!r}; formats: {', '.join(OUTPUT_FORMATS)}")
    print_result(run_query(Store.existing(store), query), fmt, out)


@app.command()
def audit(
    store: StoreOption = Path(DEFAULT_STORE),
    disagreements: Annotated[
        int, typer.Option(help="How many disagreements to list (human, and AI against the human majority).")
    ] = 10,
) -> None:
    """Summarise labels, coverage, human and AI-human agreement, judge biases and preference sets."""
    summary = audit_summary(Store.existing(store), disagreement_limit=disagreements)
    titles = {
        "stage_counts": "Pipeline stages (items in, rows out)",
        "label_counts": "Labels by source and labeller",
        "coverage_ledger": "Coverage ledger (prompt family x label source)",
        "human_agreement": "Human-human agreement (Cohen's kappa)",
        "disagreements": "Disagreement bench (most split first)",
        "ai_human_agreement": "AI-human agreement (vs the human majority; Cohen's kappa)",
        "position_consistency": "AI judge position consistency (both orders)",
        "length_bias": "Length bias (how often the longer response wins)",
        "calibration_error": "AI judge calibration (expected calibration error vs humans)",
        "ai_disagreements": "AI labels against the human majority (most confident first)",
        "preference_summary": "Preference sets (rows by deciding source)",
    }
    for name, result in summary.sections.items():
        if result.rows:
            out.print(rich_table(result, title=titles[name], max_width=40))
        else:
            out.print(f"[bold]{titles[name]}[/bold]: [dim]none yet[/dim]")
    missing = summary.unlabelled_families("human")
    if missing:
        out.print(f"[yellow]families with no human label:[/yellow] {', '.join(missing)}")


@constitution_app.command("validate")
def constitution_validate(
    files: Annotated[list[Path], typer.Argument(help="Constitution YAML files.")],
) -> None:
    """Check constitution files; every problem names its file, line and field."""
    failed = 0
    for path in files:
        try:
            constitution = load_constitution(path)
        except InputError as exc:
            failed += 1
            err.print(f"[red]✗ {path}[/red]")
            for problem in exc.problems:
                err.print(f"  {problem}", markup=False, highlight=False)
            continue
        out.print(
            f"[green]✓ {path}[/green]: {constitution.name} {constitution.version}, "
            f"{len(constitution.principles)} principles, id {constitution.constitution_id[:12]}"
        )
    if failed:
        raise typer.Exit(1)


@constitution_app.command("show")
def constitution_show(
    file: Path,
    full: Annotated[bool, typer.Option(help="Print every principle's full text.")] = False,
) -> None:
    """Show a constitution's principles, tags and rules."""
    constitution = load_constitution(file)
    out.print(
        Panel(
            f"{constitution.description or ''}\n\n[dim]id {constitution.constitution_id}[/dim]",
            title=f"{constitution.name} {constitution.version}",
            title_align="left",
        )
    )
    if full:
        for p in constitution.principles:
            body = "\n".join(
                f"[bold]{name}[/bold]: {getattr(p, name)}"
                for name in ("critique", "revision", "comparison")
                if getattr(p, name)
            )
            rules = "\n".join(f"[bold]rule {r.id}[/bold]: {r.meaning()}" for r in p.rules)
            tags = f"tags: {', '.join(p.tags)}\n" if p.tags else "tags: (all families)\n"
            out.print(
                Panel(
                    tags + body + ("\n" + rules if rules else ""),
                    title=f"{p.id}: {p.title}",
                    title_align="left",
                )
            )
        return
    table = Table("id", "title", "tags", "rules", "hash")
    for p in constitution.principles:
        table.add_row(
            p.id,
            p.title,
            ", ".join(p.tags) or "(all)",
            ", ".join(r.id for r in p.rules),
            p.principle_hash[:10],
        )
    out.print(table)


@constitution_app.command("diff")
def constitution_diff(old: Path, new: Path) -> None:
    """Principle-level differences: added, removed and changed principles with their text."""
    diff = diff_constitutions(load_constitution(old), load_constitution(new))
    if diff.empty:
        out.print("no differences")
        return
    status = (
        "[yellow]changed[/yellow]"
        if diff.meaning_changed
        else "[green]unchanged (cosmetic edits only)[/green]"
    )
    out.print(f"constitution id {diff.old_id[:12]} → {diff.new_id[:12]}: {status}")
    for change in diff.metadata:
        out.print(f"[bold]{change.field}[/bold]: {change.old!r} → {change.new!r}")
    for p in diff.added:
        out.print(f"[green]+ added[/green] {p.id}: {p.title}")
    for p in diff.removed:
        out.print(f"[red]- removed[/red] {p.id}: {p.title}")
    for principle_id, changes in diff.changed.items():
        out.print(f"[yellow]~ changed[/yellow] {principle_id}: {', '.join(c.field for c in changes)}")
        for change in changes:
            out.print(change.unified(), markup=False, highlight=False)


@constitution_app.command("import")
def constitution_import(
    sources: Annotated[
        list[Path], typer.Argument(help="Files to import (e.g. the CAI critique and comparison JSON).")
    ],
    output: Annotated[Path, typer.Option("-o", "--output", help="Where to write the YAML.")],
    fmt: Annotated[str, typer.Option("--format", help=f"One of: {', '.join(IMPORT_FORMATS)}.")] = "anthropic",
    name: Annotated[
        str | None, typer.Option(help="Constitution name (default: from the first file).")
    ] = None,
    version: Annotated[str, typer.Option(help="Version string.")] = "1.0.0",
    description: Annotated[str | None, typer.Option(help="Description.")] = None,
) -> None:
    """Convert a published constitution into charter's YAML format (validated before writing)."""
    if fmt not in IMPORT_FORMATS:
        raise CharterError(f"unknown --format {fmt!r}; formats: {', '.join(IMPORT_FORMATS)}")
    text, constitution = import_anthropic(
        list(sources), name or slugify(sources[0].stem), version, description
    )
    output.write_text(text, encoding="utf-8")
    out.print(
        f"[green]wrote[/green] {output}: {len(constitution.principles)} principles, "
        f"id {constitution.constitution_id[:12]}"
    )


models_app = typer.Typer(help="Prepare and inspect the models charter loads.", no_args_is_help=True)
app.add_typer(models_app, name="models")


@models_app.command("prepare")
def models_prepare(
    model: Annotated[
        str | None, typer.Option(help="Model to resolve (default: the embedded SmolLM2).")
    ] = None,
) -> None:
    """Convert the embedded default model into a safetensors folder in the cache (once)."""
    resolved = resolve_model(model)
    out.print(f"[green]ready[/green] {resolved.model_id} at {resolved.path}")


def _backend_spec(backend: str, model: str | None, base_url: str | None) -> BackendSettings:
    """Check the backend choice before any work: the kind, the model path, the server."""
    kind, reason = choose_kind(backend)
    spec = BackendSettings(kind=kind, model=model, base_url=base_url)
    identity = model_identity(spec)
    if kind == "openai":
        check_server(base_url or "")
    out.print(f"backend [bold]{kind}[/bold] ({reason}), model {identity.model_id}")
    return spec


@contextlib.contextmanager
def _progress(store: Path, table: str, total: int, description: str) -> Iterator[None]:
    """A progress bar fed by the rows landing in ``table`` (the flow runs in this process)."""
    root = Store(store)
    start = root.count(table) if (root.root / "tables" / table).exists() else 0
    stop = threading.Event()
    with Progress(*Progress.get_default_columns(), console=err, transient=True) as progress:
        bar = progress.add_task(description, total=total)

        def poll() -> None:
            while not stop.wait(1.0):
                with contextlib.suppress(OSError):
                    progress.update(bar, completed=min(total, root.count(table) - start))

        watcher = threading.Thread(target=poll, daemon=True)
        watcher.start()
        try:
            yield
        finally:
            stop.set()
            watcher.join()


@app.command()
def generate(
    prompts: Annotated[
        str, typer.Option(help="Prompt-set JSONL file, or the name of a prompt set in the store.")
    ],
    model: Annotated[
        str | None, typer.Option(help="Local model folder or Hugging Face id (default: embedded SmolLM2).")
    ] = None,
    backend: Annotated[str, typer.Option(help="auto, vllm, hf or openai.")] = "auto",
    base_url: Annotated[str | None, typer.Option(help="OpenAI-compatible server (backend openai).")] = None,
    n: Annotated[int, typer.Option("-n", "--n", help="Samples per prompt.")] = 4,
    temperature: float = 0.8,
    top_p: float = 0.95,
    max_tokens: int = 128,
    seed: int = 0,
    batch_size: Annotated[int, typer.Option(help="Prompts per Prefect task.")] = 8,
    family: Annotated[list[str] | None, typer.Option(help="Only these prompt families (repeatable).")] = None,
    limit: Annotated[int | None, typer.Option(help="Only the first N prompts.")] = None,
    runner: RunnerOption = "local",
    ray_address: RayAddressOption = None,
    store: StoreOption = Path(DEFAULT_STORE),
) -> None:
    """Sample N candidate responses per prompt into the generations table (resumable)."""
    if Path(prompts).is_file():
        preflight([], [prompts], [])
    spec = _backend_spec(backend, model, base_url)
    where = runner_spec(runner, ray_address)
    _prefect_environment()
    from flows.generate import generate as generate_flow

    total = (limit or _prompt_count(store, prompts, family)) * n
    with _progress(store, "generations", total, "generating"):
        result = generate_flow(
            store=str(store),
            prompts=prompts,
            backend=spec,
            n=n,
            temperature=temperature,
            top_p=top_p,
            max_tokens=max_tokens,
            seed=seed,
            batch_size=batch_size,
            families=family,
            limit=limit,
            runner=where,
        )
    out.print(
        f"[green]generate complete[/green] (run {result['run_id']}): {result['prompts']} prompts, "
        f"{result['batches']} batches ({result['batches_skipped']} already done), "
        f"generations +{result['rows_added'].get('generations', 0)}"
    )


@app.command()
def critique(
    prompts: Annotated[
        str, typer.Option(help="Prompt set (name in the store) whose generations to critique.")
    ],
    constitution: Annotated[Path, typer.Option(help="Constitution YAML whose principles are sampled.")],
    model: Annotated[str | None, typer.Option(help="Critic model (default: embedded SmolLM2).")] = None,
    backend: Annotated[str, typer.Option(help="auto, vllm, hf or openai.")] = "auto",
    base_url: Annotated[str | None, typer.Option(help="OpenAI-compatible server (backend openai).")] = None,
    rounds: Annotated[int, typer.Option(help="Critique -> revision rounds per generation.")] = 1,
    critique_tokens: int = 96,
    revision_tokens: int = 160,
    temperature: float = 0.7,
    top_p: float = 0.95,
    seed: int = 0,
    few_shot: Annotated[
        Path | None, typer.Option(help="JSONL of worked critique/revision dialogues.")
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Generations per Prefect task.")] = 8,
    family: Annotated[list[str] | None, typer.Option(help="Only these prompt families (repeatable).")] = None,
    limit: Annotated[int | None, typer.Option(help="Only the first N prompts (as in generate).")] = None,
    runner: RunnerOption = "local",
    ray_address: RayAddressOption = None,
    store: StoreOption = Path(DEFAULT_STORE),
) -> None:
    """Critique and revise generations against sampled principles into the critiques table (resumable)."""
    load_constitution(constitution)
    settings = CritiqueSettings(
        rounds=rounds,
        critique_tokens=critique_tokens,
        revision_tokens=revision_tokens,
        temperature=temperature,
        top_p=top_p,
        seed=seed,
        few_shot_path=str(few_shot) if few_shot else None,
    )
    settings.config()  # validates the few-shot file before any work
    spec = _backend_spec(backend, model, base_url)
    where = runner_spec(runner, ray_address)
    _prefect_environment()
    from flows.critique import critique as critique_flow

    total = len(
        generations_of(
            Store.existing(store), select_prompts(Store(store), prompts, families=family, limit=limit)
        )
    )
    with _progress(store, "critiques", total * rounds, "critiquing"):
        result = critique_flow(
            store=str(store),
            prompts=prompts,
            constitution=str(constitution),
            backend=spec,
            settings=settings,
            batch_size=batch_size,
            families=family,
            limit=limit,
            runner=where,
        )
    out.print(
        f"[green]critique complete[/green] (run {result['run_id']}): {result['generations']} generations, "
        f"{result['batches']} batches ({result['batches_skipped']} already done), "
        f"critiques +{result['rows_added'].get('critiques', 0)}"
    )


@app.command()
def export(
    kind: Annotated[
        str, typer.Argument(help="preferences (a merged set), sft or revisions (critique chains).")
    ],
    output: Annotated[Path, typer.Option("-o", "--output", help="JSONL file or dataset folder to write.")],
    fmt: Annotated[str, typer.Option("--format", help="jsonl or hf (a datasets folder).")] = "jsonl",
    style: Annotated[
        str, typer.Option(help="conversational (messages) or standard (text).")
    ] = "conversational",
    set_id: Annotated[
        str | None, typer.Option("--set", help="preferences: the set id or a prefix (default: the latest).")
    ] = None,
    prompts: Annotated[
        str | None, typer.Option(help="sft/revisions: prompt set whose chains to export.")
    ] = None,
    constitution: Annotated[
        Path | None, typer.Option(help="sft/revisions: the constitution the chains were critiqued with.")
    ] = None,
    model: Annotated[str | None, typer.Option(help="The critic model used.")] = None,
    backend: Annotated[str, typer.Option(help="The backend used.")] = "auto",
    base_url: Annotated[str | None, typer.Option(help="The server used (backend openai).")] = None,
    rounds: int = 1,
    critique_tokens: int = 96,
    revision_tokens: int = 160,
    temperature: float = 0.7,
    top_p: float = 0.95,
    seed: int = 0,
    few_shot: Annotated[Path | None, typer.Option(help="The few-shot file used.")] = None,
    family: Annotated[list[str] | None, typer.Option(help="Only these prompt families (repeatable).")] = None,
    limit: Annotated[int | None, typer.Option(help="Only the first N prompts (as in generate).")] = None,
    store: StoreOption = Path(DEFAULT_STORE),
) -> None:
    """Export for TRL: a merged preference set, or from critique chains the SFT set (prompt, final
    revision) or revision-over-original preferences.

    For chains, give the same settings as the critique run: they identify which chains to follow.
    """
    if kind not in ("preferences", "sft", "revisions"):
        raise CharterError(f"unknown export {kind!r}: choose preferences, sft or revisions")
    _check_export_options(fmt, style)
    if kind == "preferences":
        _export_set(Store.existing(store), set_id, output, fmt, style)
        return
    if prompts is None or constitution is None:
        raise CharterError(f"export {kind} needs --prompts and --constitution (the critique run's)")
    settings = CritiqueSettings(
        rounds=rounds,
        critique_tokens=critique_tokens,
        revision_tokens=revision_tokens,
        temperature=temperature,
        top_p=top_p,
        seed=seed,
        few_shot_path=str(few_shot) if few_shot else None,
    )
    spec = concrete(BackendSettings(kind=choose_kind(backend)[0], model=model, base_url=base_url))
    states = chain_states(
        Store.existing(store),
        None,
        {"prompt_set": prompts, "families": family, "limit": limit},
        str(constitution),
        settings,
        spec,
    )
    if kind == "sft":
        records, skipped = sft_records(states, rounds, style), 0
    else:
        records, skipped = preference_records(states, rounds, style)
    if not records:
        raise CharterError("nothing to export: no completed critique chains for this selection and settings")
    path = write_records(records, output, fmt)
    incomplete = sum(1 for s in states if len(s.done) < rounds)
    out.print(
        f"[green]wrote[/green] {len(records)} {kind} records to {path} "
        f"({incomplete} chains not complete, {skipped} unchanged by revision skipped)"
    )


@app.command()
def label(
    constitution: Annotated[Path, typer.Option(help="Constitution YAML whose principles the judge reads.")],
    prompts: Annotated[
        str | None, typer.Option(help="Prompt set whose responses to pair (modes all, revision).")
    ] = None,
    pairs: Annotated[
        str, typer.Option(help="all (every two responses), revision (revision vs original), human.")
    ] = "all",
    per_prompt: Annotated[int | None, typer.Option(help="At most N sampled pairs per prompt.")] = None,
    method: Annotated[
        list[str] | None, typer.Option(help="logprob, cot or rule (repeatable; default logprob and rule).")
    ] = None,
    principles_per_pair: Annotated[
        int, typer.Option(help="Principles sampled per pair (more than 1: an ensemble of labels).")
    ] = 1,
    template: Annotated[
        Path | None,
        typer.Option(help="Judge prompt template with {conversation} {principle} {response_a} {response_b}."),
    ] = None,
    cot_tokens: Annotated[int, typer.Option(help="Reasoning tokens for the cot method.")] = 64,
    cot_clamp: Annotated[
        tuple[float, float], typer.Option(help="Band the cot method's soft label is clamped into.")
    ] = (0.4, 0.6),
    seed: int = 0,
    model: Annotated[str | None, typer.Option(help="Judge model (default: embedded SmolLM2).")] = None,
    backend: Annotated[str, typer.Option(help="auto, vllm, hf or openai.")] = "auto",
    base_url: Annotated[str | None, typer.Option(help="OpenAI-compatible server (backend openai).")] = None,
    batch_size: Annotated[int, typer.Option(help="Pairs per Prefect task.")] = 16,
    family: Annotated[list[str] | None, typer.Option(help="Only these prompt families (repeatable).")] = None,
    limit: Annotated[int | None, typer.Option(help="Only the first N prompts (human mode: N pairs).")] = None,
    runner: RunnerOption = "local",
    ray_address: RayAddressOption = None,
    store: StoreOption = Path(DEFAULT_STORE),
) -> None:
    """Label response pairs with the AI judge (both orders, soft labels) and the constitution's rules."""
    load_constitution(constitution)
    if pairs not in PAIR_MODES:
        raise CharterError(f"unknown --pairs {pairs!r}; modes: {', '.join(PAIR_MODES)}")
    unknown = sorted(set(method or ()) - set(METHODS))
    if unknown:
        raise CharterError(f"unknown --method {', '.join(unknown)}; methods: {', '.join(METHODS)}")
    pair_settings = PairSettings(mode=pairs, per_prompt=per_prompt, seed=seed)
    judge_settings = JudgeSettings(
        methods=tuple(method or ("logprob", "rule")),
        principles_per_pair=principles_per_pair,
        seed=seed,
        template_path=str(template) if template else None,
        cot_tokens=cot_tokens,
        cot_clamp=cot_clamp,
    )
    judge_settings.template()  # a bad template fails here, before any work
    if pair_settings.mode != "human" and not prompts:
        raise CharterError(f"--pairs {pairs} needs --prompts (the prompt set whose responses to pair)")
    if set(judge_settings.methods) == {"rule"}:
        spec = BackendSettings(kind=choose_kind(backend)[0], model=model, base_url=base_url)
    else:
        spec = _backend_spec(backend, model, base_url)
    where = runner_spec(runner, ray_address)
    _prefect_environment()
    from flows.label import label as label_flow

    result = label_flow(
        store=str(store),
        constitution=str(constitution),
        prompts=prompts,
        backend=spec,
        pairs=pair_settings,
        judge=judge_settings,
        batch_size=batch_size,
        families=family,
        limit=limit,
        runner=where,
    )
    skipped = ", ".join(f"{n} {why}" for why, n in result["skipped"].items())
    out.print(
        f"[green]label complete[/green] (run {result['run_id']}): {result['pairs']} pairs"
        f"{f' ({skipped} skipped)' if skipped else ''}, {result['batches']} judge batches "
        f"({result['batches_skipped']} already done), ai_labels +{result['rows_added'].get('ai_labels', 0)}"
    )


@app.command()
def merge(
    policy: Annotated[
        Path | None, typer.Option(help="Merge policy YAML (see README, 'Merge policy').")
    ] = None,
    ai_min_margin: Annotated[
        float | None, typer.Option(help="Keep AI decisions only with |p - 0.5| at least this.")
    ] = None,
    require_consistent: Annotated[
        bool | None,
        typer.Option(
            "--require-consistent/--allow-inconsistent", help="Only AI labels whose two orders agree."
        ),
    ] = None,
    ties: Annotated[str | None, typer.Option(help="drop or keep (target 0.5).")] = None,
    human_split: Annotated[
        str | None, typer.Option(help="When humans split: drop, or ai (let AI decide).")
    ] = None,
    prompts: Annotated[
        str | None, typer.Option(help="Only labels on this prompt set's conversations.")
    ] = None,
    family: Annotated[list[str] | None, typer.Option(help="Only these prompt families (repeatable).")] = None,
    output: Annotated[
        Path | None,
        typer.Option("-o", "--output", help="Also export the set (JSONL file or dataset folder)."),
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="jsonl or hf (a datasets folder).")] = "jsonl",
    style: Annotated[
        str, typer.Option(help="conversational (messages) or standard (text).")
    ] = "conversational",
    store: StoreOption = Path(DEFAULT_STORE),
) -> None:
    """Merge human and AI labels into a versioned preference set (content-hash id) under a policy."""
    base = load_merge_policy(policy) if policy else MergeSettings()
    overrides = {
        "ai_min_margin": ai_min_margin,
        "ai_require_consistent": require_consistent,
        "ties": ties,
        "human_split": human_split,
    }
    merged_policy = MergeSettings.model_validate(
        base.model_dump() | {key: value for key, value in overrides.items() if value is not None}
    )
    _check_export_options(fmt, style)
    _prefect_environment()
    from flows.merge import merge as merge_flow

    result = merge_flow(
        store=str(Store.existing(store).root),
        policy=merged_policy,
        policy_path=str(policy) if policy else None,
        prompts=prompts,
        families=family,
    )
    dropped = ", ".join(f"{n} {why}" for why, n in sorted(result["dropped"].items())) or "none"
    out.print(
        f"[green]merge complete[/green] (run {result['run_id']}): preference set {result['set_id'][:12]}, "
        f"{result['rows']} rows; dropped: {dropped}"
    )
    if output:
        _export_set(Store(store), result["set_id"], output, fmt, style)


def _check_export_options(fmt: str, style: str) -> None:
    if fmt not in EXPORT_FORMATS:
        raise CharterError(f"unknown --format {fmt!r}; formats: {', '.join(EXPORT_FORMATS)}")
    if style not in STYLES:
        raise CharterError(f"unknown --style {style!r}; styles: {', '.join(STYLES)}")


def _export_set(store: Store, set_id: str | None, output: Path, fmt: str, style: str) -> None:
    chosen, rows = read_set(store, set_id)
    if not rows:
        raise CharterError(f"preference set {chosen[:12]} is empty: the merge policy dropped every pair")
    path = write_records(preference_set_records(rows, style), output, fmt)
    out.print(f"[green]wrote[/green] {len(rows)} preference pairs of set {chosen[:12]} to {path}")


train_app = typer.Typer(help="Train reward models and policies on preference sets.", no_args_is_help=True)
app.add_typer(train_app, name="train")

SetOption = Annotated[
    str | None, typer.Option("--set", help="Preference set id or prefix (default: the latest).")
]
OutputOption = Annotated[
    Path | None, typer.Option("-o", "--output", help="Checkpoint folder (default: STORE/checkpoints/...).")
]


@train_app.command("reward")
def train_reward_command(
    set_id: SetOption = None,
    backbone: Annotated[
        str, typer.Option(help="minilm (embedded encoder), smollm2 (embedded causal LM) or a model path.")
    ] = "minilm",
    epochs: int = 1,
    batch_size: int = 16,
    learning_rate: float = 5e-5,
    max_length: int = 256,
    eval_fraction: Annotated[float, typer.Option(help="Share of pairs held out for evaluation.")] = 0.2,
    seed: int = 0,
    output: OutputOption = None,
    store: StoreOption = Path(DEFAULT_STORE),
) -> None:
    """Train a Bradley-Terry reward model (soft targets, weights) and report held-out calibration."""

    config = RewardModelSettings(
        backbone=backbone,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        max_length=max_length,
        eval_fraction=eval_fraction,
        seed=seed,
    )
    read_set(Store.existing(store), set_id)  # a missing set fails before Prefect starts
    _prefect_environment()
    from flows.train import train_reward

    result = train_reward(
        store=str(store), set_id=set_id, config=config, output=str(output) if output else None
    )
    after = result["metrics"].get("after") or {}
    before = result["metrics"].get("before") or {}
    out.print(
        f"[green]reward model[/green] {result['path']}{' (already trained)' if result['reused'] else ''}: "
        f"{result['metrics']['train_pairs']} training pairs, {result['metrics']['eval_pairs']} held out; "
        f"held-out loss {before.get('loss', float('nan')):.4f} -> {after.get('loss', float('nan')):.4f}, "
        f"accuracy {after.get('accuracy')}, ECE {after.get('ece')}"
    )


@train_app.command("dpo")
def train_dpo_command(
    set_id: SetOption = None,
    model: Annotated[str | None, typer.Option(help="Policy model (default: embedded SmolLM2).")] = None,
    beta: float = 0.1,
    loss_type: Annotated[
        str, typer.Option(help="A TRL DPO loss type (sigmoid, ipo, hinge, ...).")
    ] = "sigmoid",
    label_smoothing: float = 0.0,
    steps: int = 20,
    batch_size: int = 4,
    learning_rate: float = 5e-5,
    max_length: int = 384,
    lora: Annotated[bool, typer.Option("--lora/--no-lora", help="Train LoRA adapters (default).")] = True,
    min_confidence: Annotated[
        float, typer.Option(help="Only rows whose |2*target-1| is at least this.")
    ] = 0.0,
    margin_pairs: Annotated[
        int, typer.Option(help="Training pairs the log-prob margin before/after is measured on.")
    ] = 32,
    seed: int = 0,
    output: OutputOption = None,
    store: StoreOption = Path(DEFAULT_STORE),
) -> None:
    """DPO on a preference set through TRL, with a frozen reference; saves the merged model and lineage."""
    settings = DPOSettings(
        beta=beta,
        loss_type=loss_type,
        label_smoothing=label_smoothing,
        steps=steps,
        batch_size=batch_size,
        learning_rate=learning_rate,
        max_length=max_length,
        lora=lora,
        min_confidence=min_confidence,
        margin_pairs=margin_pairs,
        seed=seed,
    )
    settings.check()
    read_set(Store.existing(store), set_id)
    _prefect_environment()
    from flows.train import train_dpo

    result = train_dpo(
        store=str(store),
        set_id=set_id,
        model=model,
        settings=settings,
        output=str(output) if output else None,
    )
    metrics = result["metrics"]
    out.print(
        f"[green]DPO policy[/green] {result['path']}{' (already trained)' if result['reused'] else ''}: "
        f"{result['pairs']} pairs, {len(metrics['loss'])} steps; log pi(chosen) - log pi(rejected) "
        f"{metrics['logprob_margin_before']:.3f} -> {metrics['logprob_margin_after']:.3f}"
    )


@train_app.command("ppo")
def train_ppo_command(
    prompts: Annotated[str, typer.Option(help="Prompt set whose prompts the policy answers in rollouts.")],
    reward_model: Annotated[
        Path | None, typer.Option(help="Reward model checkpoint (its score is the reward).")
    ] = None,
    rules: Annotated[
        Path | None, typer.Option(help="Constitution whose rules add a reward (-1 per broken rule).")
    ] = None,
    model: Annotated[str | None, typer.Option(help="Policy model (default: embedded SmolLM2).")] = None,
    steps: int = 20,
    batch_size: int = 8,
    max_new_tokens: int = 32,
    learning_rate: float = 1e-5,
    init_kl_coef: float = 0.2,
    target_kl: Annotated[
        float, typer.Option(help="The adaptive KL controller's target (nats per response).")
    ] = 6.0,
    kl_horizon: float = 10000,
    adaptive_kl: Annotated[bool, typer.Option("--adaptive-kl/--fixed-kl")] = True,
    seed: int = 0,
    output: OutputOption = None,
    store: StoreOption = Path(DEFAULT_STORE),
) -> None:
    """PPO with a LoRA policy, value head, GAE, clipping and an adaptive KL penalty to the frozen base."""

    if reward_model is None and rules is None:
        raise CharterError("give a reward: --reward-model DIR, --rules CONSTITUTION, or both")
    if reward_model:
        read_lineage(reward_model)
    if rules:
        load_constitution(rules)
    config = PPOSettings(
        steps=steps,
        batch_size=batch_size,
        max_new_tokens=max_new_tokens,
        learning_rate=learning_rate,
        init_kl_coef=init_kl_coef,
        target_kl=target_kl,
        kl_horizon=kl_horizon,
        adaptive_kl=adaptive_kl,
        seed=seed,
    )
    _prefect_environment()
    from flows.train import train_ppo

    result = train_ppo(
        store=str(store),
        prompts=prompts,
        model=model,
        config=config,
        reward_model=str(reward_model) if reward_model else None,
        rules=str(rules) if rules else None,
        output=str(output) if output else None,
    )
    steps_log = result["metrics"]["steps"]
    first, last = steps_log[0], steps_log[-1]
    out.print(
        f"[green]PPO policy[/green] {result['path']}{' (already trained)' if result['reused'] else ''}: "
        f"{len(steps_log)} steps; reward {first['reward_mean']:.3f} -> {last['reward_mean']:.3f}, "
        f"KL {first['kl']:.3f} -> {last['kl']:.3f} (coefficient {last['kl_coef']:.4f})"
    )


@app.command("eval")
def eval_command(
    constitution: Annotated[Path, typer.Option(help="Constitution for rule checks and the AI judge.")],
    prompts: Annotated[
        str, typer.Option(help="Prompt set; prompts the training set did not use are held out.")
    ],
    checkpoint: Annotated[
        Path | None, typer.Argument(help="A dpo or ppo checkpoint (default: the store's latest).")
    ] = None,
    per_family: Annotated[int, typer.Option(help="Held-out prompts per family.")] = 2,
    reward_model: Annotated[
        Path | None, typer.Option(help="Reward model checkpoint (default: the store's latest, if any).")
    ] = None,
    judge: Annotated[
        bool, typer.Option("--judge/--no-judge", help="AI-judge win rate (both orders).")
    ] = True,
    max_tokens: int = 64,
    seed: int = 0,
    store: StoreOption = Path(DEFAULT_STORE),
) -> None:
    """Behaviour scoreboard, tuned vs base per family: reward, rules, escalation, refusal, KL, wins."""
    load_constitution(constitution)
    checkpoint = checkpoint or latest_checkpoint(store, ("dpo", "ppo"))
    if checkpoint is None:
        raise CharterError(f"no policy checkpoint in {store}/checkpoints: run `charter train dpo` first")
    read_lineage(checkpoint)
    reward_model = reward_model or latest_checkpoint(store, ("reward",))
    if reward_model:
        read_lineage(reward_model)
    out.print(f"evaluating {checkpoint}" + (f" with reward model {reward_model}" if reward_model else ""))
    _prefect_environment()
    from flows.train import evaluate

    report = evaluate(
        store=str(store),
        checkpoint=str(checkpoint),
        constitution=str(constitution),
        prompts=prompts,
        per_family=per_family,
        reward_model=str(reward_model) if reward_model else None,
        use_judge=judge,
        max_tokens=max_tokens,
        seed=seed,
    )
    print_scoreboard(report, out)
    out.print(f"[dim]full scoreboard with every response: {Path(checkpoint) / SCOREBOARD_FILE}[/dim]")


@app.command("run")
def run_pipeline(
    config: Annotated[
        Path | None,
        typer.Argument(help="Pipeline config YAML (default: the bundled healthcare-scheduling one)."),
    ] = None,
    stage: Annotated[
        list[str] | None,
        typer.Option(help="Only these stages (repeatable): ingest, generate, ..., evaluate."),
    ] = None,
    store: Annotated[
        Path | None, typer.Option("--store", envvar="CHARTER_STORE", help="Override the config's store.")
    ] = None,
) -> None:
    """The whole pipeline from one config: ingest, generate, critique, label, merge, train, evaluate."""
    from tasks.orchestration.pipeline_config import STAGES, load_pipeline_config

    path = config or PROJECT_ROOT / "datasets" / "healthcare-scheduling" / "pipeline.yaml"
    settings = load_pipeline_config(path)  # every key and file checked before any work
    unknown = sorted(set(stage or ()) - set(STAGES))
    if unknown:
        raise CharterError(f"unknown --stage {', '.join(unknown)}; stages: {', '.join(STAGES)}")
    _prefect_environment()
    from tasks.orchestration.prefect_server import api_server_starting, without_heartbeats_when_ephemeral

    with api_server_starting():  # comes up while the model is prepared and torch is imported
        identity = model_identity(settings.policy_model.spec())
        out.print(f"pipeline {path}: store {store or settings.store}, model {identity.model_id}")
        from flows.pipeline import pipeline

    with without_heartbeats_when_ephemeral():
        result = pipeline(config=str(path), stages=stage, store=str(store) if store else None)
    out.print(Path(result["report_markdown"]).read_text(encoding="utf-8"), markup=False, highlight=False)
    out.print(f"[green]pipeline complete[/green] (run {result['run_id']}); report: {result['report_html']}")


@app.command()
def score(
    reward_model: Annotated[Path, typer.Option(help="Reward model checkpoint.")],
    prompt: Annotated[str, typer.Option(help="The user's message.")],
    responses: Annotated[list[str], typer.Argument(help="Responses to score.")],
) -> None:
    """Score responses to a prompt with a trained reward model (higher is better)."""
    from tasks.train.reward_model import load_reward_model, score_texts

    model, tokenizer, metadata = load_reward_model(reward_model)
    conversation = [{"role": "user", "content": prompt}]
    scores = score_texts(
        model, tokenizer, [conversation] * len(responses), responses, metadata["config"]["max_length"], 16
    )
    table = Table("score", "response")
    for value, text in sorted(zip(scores, responses, strict=True), reverse=True):
        table.add_row(f"{value:.4f}", text)
    out.print(table)


@app.command()
def lineage(checkpoint: Annotated[Path, typer.Argument(help="A checkpoint folder charter wrote.")]) -> None:
    """What made a checkpoint: run, base model, preference set, constitutions, label counts, metrics."""
    record = read_lineage(checkpoint)
    record.get("metrics", {}).pop("steps", None)  # per-step logs are in the file, too long to print
    out.print_json(data=record)


@app.command()
def schedule(
    flow: Annotated[str, typer.Option(help=f"Flow to serve: {', '.join(FLOWS)}.")] = "pipeline",
    cron: Annotated[
        str | None, typer.Option(help="Cron expression, 5 fields, e.g. '0 2 * * *' (none: on demand only).")
    ] = None,
    timezone: Annotated[str, typer.Option(help="IANA time zone the cron expression is read in.")] = "UTC",
    name: Annotated[str | None, typer.Option(help="Deployment name (default: the flow's name).")] = None,
    param: Annotated[
        list[str] | None,
        typer.Option(help="Default parameter KEY=VALUE, VALUE read as JSON if it parses (repeatable)."),
    ] = None,
) -> None:
    """Serve a flow as a deployment on a Prefect server (PREFECT_API_URL): its runs execute here."""
    _prefect_environment()  # the cron check imports Prefect's validator
    cron = check_cron(cron) if cron is not None else None
    check_timezone(timezone)
    flow_path(flow)
    from flows.schedule import plan, serve

    serve_plan = plan(flow, cron, timezone, name, param or [])
    out.print(f"[green]serving deployment[/green] [bold]{serve_plan.full_name}[/bold]")
    if serve_plan.parameters:
        out.print(f"default parameters: {json.dumps(serve_plan.parameters)}", markup=False, highlight=False)
    if cron:
        times = ", ".join(t.isoformat() for t in next_run_times(cron, timezone))
        out.print(f"schedule '{cron}' ({timezone}); next runs: {times}", markup=False, highlight=False)
    else:
        out.print("no schedule: runs start only when triggered")
    out.print(f"trigger a run now: {serve_plan.trigger_command}", markup=False, highlight=False)
    out.print("[dim]Ctrl+C stops serving and pauses the schedule.[/dim]")
    serve(serve_plan)


def _prompt_count(store: Path, prompts: str, families: list[str] | None) -> int:
    """How many prompts a run will cover, for the progress bar's total."""
    if Path(prompts).is_file():
        return sum(1 for p in load_prompt_set(prompts) if not families or p.family in families)
    return len(select_prompts(Store.existing(store), prompts, families=families))


def main() -> None:
    """Entry point: user errors print as messages, not tracebacks, and exit 1."""
    try:
        app()
    except CharterError as exc:
        err.print(Text.assemble(("error: ", "red"), str(exc)), highlight=False)
        sys.exit(1)
    except ValidationError as exc:
        # Options checked by the settings models (a --pairs or --method value out of range, say).
        for problem in exc.errors():
            where = ".".join(str(part) for part in problem["loc"])
            err.print(Text.assemble(("error: ", "red"), f"{where}: {problem['msg']}"), highlight=False)
        sys.exit(1)
