"""Preference data out of the store: ``merge`` (labels into a preference set) and ``export``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from flows.cli.common import PromptSelection, backend_options, out, prefect_environment
from flows.cli.options import Flag, Options, settings_options
from flows.cli.stages import critique_options
from flows.cli.store_option import DEFAULT_STORE_PATH, StoreOption
from tasks.backends.settings import BackendSettings, concrete
from tasks.core.errors import CharterError
from tasks.critique.settings import CritiqueSettings
from tasks.merge.policy import MergeSettings, load_merge_policy
from tasks.store.exports import FORMATS as EXPORT_FORMATS
from tasks.store.exports import STYLES
from tasks.store.store import Store

app = typer.Typer()

POLICY_OVERRIDES = Options(
    MergeSettings,
    only=(
        "ai_min_margin",
        "ai_require_consistent",
        "ties",
        "human_split",
        "rule_confidence",
        "max_rm_uncertainty",
    ),
    flags={"ai_require_consistent": Flag(names=("--require-consistent/--allow-inconsistent",))},
    overrides=True,
)
FormatOption = Annotated[
    str,
    typer.Option(
        "--format", help="jsonl, hf (a save_to_disk folder) or hub (a folder in the Hub's datasets layout)."
    ),
]
StyleOption = Annotated[str, typer.Option(help="conversational (messages) or standard (text).")]


@app.command()
@settings_options(overrides=POLICY_OVERRIDES, selection=Options(PromptSelection, only=("family",)))
def merge(
    policy: Annotated[
        Path | None, typer.Option(help="Merge policy YAML (see README, 'Merge policy').")
    ] = None,
    *,
    overrides: dict[str, Any],
    prompts: Annotated[
        str | None, typer.Option(help="Only labels on this prompt set's conversations.")
    ] = None,
    selection: PromptSelection,
    output: Annotated[
        Path | None,
        typer.Option("-o", "--output", help="Also export the set (JSONL file or dataset folder)."),
    ] = None,
    fmt: FormatOption = "jsonl",
    style: StyleOption = "conversational",
    store: StoreOption = DEFAULT_STORE_PATH,
) -> None:
    """Merge human and AI labels into a versioned preference set (content-hash id) under a policy."""
    base = load_merge_policy(policy) if policy else MergeSettings()
    merged_policy = POLICY_OVERRIDES.apply(base, overrides)
    _check_export_options(fmt, style)
    prefect_environment()
    from flows.merge import merge as merge_flow

    result = merge_flow(
        store=str(Store.existing(store).root),
        policy=merged_policy,
        policy_path=str(policy) if policy else None,
        prompts=prompts,
        families=selection.family,
    )
    dropped = ", ".join(f"{n} {why}" for why, n in sorted(result.dropped.items())) or "none"
    out.print(
        f"[green]merge complete[/green] (run {result.run_id}): preference set {result.set_id[:12]}, "
        f"{result.rows} rows; dropped: {dropped}"
    )
    published = result.rows_added.get("human_labels", 0)
    if published:
        out.print(f"{published} review-bench labels published to the store first, and used")
    if output:
        _export_set(Store(store), result.set_id, output, fmt, style)


@app.command()
@settings_options(
    backend=backend_options("Critic"),
    settings=critique_options(skip=("batch_size",), few_shot_help="The few-shot file the critique run used."),
    selection=Options(PromptSelection),
)
def export(
    kind: Annotated[
        str,
        typer.Argument(
            help="preferences (a merged set), sft or revisions (critique chains), or review (a queue)."
        ),
    ],
    output: Annotated[Path, typer.Option("-o", "--output", help="JSONL file or dataset folder to write.")],
    fmt: FormatOption = "jsonl",
    style: StyleOption = "conversational",
    set_id: Annotated[
        str | None, typer.Option("--set", help="preferences: the set id or a prefix (default: the latest).")
    ] = None,
    prompts: Annotated[
        str | None, typer.Option(help="sft/revisions: prompt set whose chains to export.")
    ] = None,
    constitution: Annotated[
        Path | None, typer.Option(help="sft/revisions: the constitution the chains were critiqued with.")
    ] = None,
    queue: Annotated[
        str | None, typer.Option(help="review: the queue to export (--format label-studio|argilla).")
    ] = None,
    queues: Annotated[
        Path | None, typer.Option(help="review: the queue file (default: the bundled one).")
    ] = None,
    *,
    backend: BackendSettings,
    settings: CritiqueSettings,
    selection: PromptSelection,
    store: StoreOption = DEFAULT_STORE_PATH,
) -> None:
    """Export for TRL: a merged preference set, or from critique chains the SFT set (prompt, final
    revision) or revision-over-original preferences.

    For chains, give the same settings as the critique run: they identify which chains to follow.
    Final revisions that talk about the response instead of being one, or copy a few-shot
    dialogue's revision, are left out, and counted.
    """
    from tasks.critique.plan import chain_states
    from tasks.store.exports import preference_records, sft_records, write_records

    if kind not in ("preferences", "sft", "revisions", "review"):
        raise CharterError(f"unknown export {kind!r}: choose preferences, sft, revisions or review")
    if kind == "review":
        _export_queue(Store.existing(store), queue, queues, fmt, output, selection.limit)
        return
    _check_export_options(fmt, style)
    if kind == "preferences":
        _export_set(Store.existing(store), set_id, output, fmt, style)
        return
    if prompts is None or constitution is None:
        raise CharterError(f"export {kind} needs --prompts and --constitution (the critique run's)")
    chosen = {"prompt_set": prompts, "families": selection.family, "limit": selection.limit}
    states = chain_states(Store.existing(store), None, chosen, str(constitution), settings, concrete(backend))
    rounds = settings.rounds
    export = sft_records if kind == "sft" else preference_records
    records, left_out = export(states, rounds, style, settings.config().few_shot)
    reasons = ", ".join(f"{n} {why}" for why, n in left_out.most_common())
    left = f"{left_out.total()} left out: {reasons}" if left_out else "none left out"
    if not records:
        why = f"every completed chain left out ({reasons})" if left_out else "no completed critique chains"
        raise CharterError(f"nothing to export: {why} for this selection and settings")
    path = write_records(records, output, fmt)
    incomplete = sum(1 for s in states if len(s.done) < rounds)
    out.print(
        f"[green]wrote[/green] {len(records)} {kind} records to {path} "
        f"({incomplete} chains not complete; {left})"
    )


def _export_queue(
    store: Store, queue: str | None, queues: Path | None, fmt: str, output: Path, limit: int | None
) -> None:
    from tasks.review.exports import FORMATS as REVIEW_FORMATS
    from tasks.review.exports import queue_export, write_review_export
    from tasks.review.settings import ReviewSettings

    if queue is None:
        raise CharterError("export review needs --queue NAME (see datasets/review/queues.yaml)")
    if fmt not in REVIEW_FORMATS:
        raise CharterError(f"export review needs --format {' or '.join(REVIEW_FORMATS)}, not {fmt!r}")
    defaults = ReviewSettings()
    records = queue_export(
        store, queue, fmt, queues_path=queues, limit=limit or defaults.snapshot_size, seed=defaults.seed
    )
    path = write_review_export(records, output, fmt)
    out.print(f"[green]wrote[/green] {len(records)} items of queue {queue} as {fmt} to {path}")


def _check_export_options(fmt: str, style: str) -> None:
    if fmt not in EXPORT_FORMATS:
        raise CharterError(f"unknown --format {fmt!r}; formats: {', '.join(EXPORT_FORMATS)}")
    if style not in STYLES:
        raise CharterError(f"unknown --style {style!r}; styles: {', '.join(STYLES)}")


def _export_set(store: Store, set_id: str | None, output: Path, fmt: str, style: str) -> None:
    from tasks.merge.preference_sets import read_set
    from tasks.store.dataset_card import set_facts, write_card
    from tasks.store.exports import preference_set_records, write_records

    chosen, rows = read_set(store, set_id)
    if not rows:
        raise CharterError(f"preference set {chosen[:12]} is empty: the merge policy dropped every pair")
    path = write_records(preference_set_records(rows, style), output, fmt)
    set_row = next(row for row in store.read("preference_sets").to_pylist() if row["set_id"] == chosen)
    card = write_card(set_facts(set_row, rows), path, fmt, style)
    out.print(
        f"[green]wrote[/green] {len(rows)} preference pairs of set {chosen[:12]} to {path}, "
        f"its dataset card to {card}"
    )
