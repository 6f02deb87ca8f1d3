"""``charter eval --preferences FILE|SET``: a reward model, a policy and the AI judge on held-out pairs.

Everything is checked before any model loads: the file's rows (file, line, field), the
checkpoints' lineages, and the overlap of the pairs with each checkpoint's training set. The
evaluation reads and writes nothing in the store, so it runs as a plain function, not a flow.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.table import Table

from flows.cli.common import checked_backend, out
from tasks.backends.settings import BackendSettings
from tasks.core.errors import CharterError
from tasks.evaluate.settings import PreferenceEvalSettings


def _figure(value: Any) -> str:
    return "-" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)


def _summary(title: str, rows: dict[str, Any]) -> Table:
    table = Table("figure", "value", title=title)
    for name, value in rows.items():
        table.add_row(name, _figure(value))
    return table


def print_reward_model(figures: dict[str, Any]) -> None:
    members = figures["members"]
    out.print(
        _summary(
            f"reward model {figures['checkpoint']} ({members} member{'s' if members > 1 else ''})",
            {
                "pairs": figures["decisive_pairs"],
                "accuracy": figures["accuracy"],
                "ECE": figures["ece"],
                "loss": figures["loss"],
                "mean uncertainty": figures["mean_uncertainty"],
            },
        )
    )
    reliability = Table("confidence", "pairs", "mean confidence", "accuracy", title="reliability")
    for row in figures["reliability"]:
        low = row["bin"] / 10
        reliability.add_row(
            f"{low:.1f}-{low + 0.1:.1f}",
            str(row["count"]),
            _figure(row["mean_confidence"]),
            _figure(row["accuracy"]),
        )
    out.print(reliability)
    if figures["uncertainty_bins"]:
        bins = Table(
            "bin", "pairs", "uncertainty", "accuracy", title="accuracy by uncertainty (1: most certain)"
        )
        for row in figures["uncertainty_bins"]:
            spread = f"{row['uncertainty_min']:.4f}-{row['uncertainty_max']:.4f}"
            bins.add_row(str(row["bin"]), str(row["pairs"]), spread, _figure(row["accuracy"]))
        out.print(bins)


def print_policy(figures: dict[str, Any]) -> None:
    out.print(
        _summary(
            f"{figures['kind']} policy {figures['checkpoint']} (reference {figures['reference_model']})",
            {
                "pairs": figures["decisive_pairs"],
                "implicit reward accuracy": figures["implicit_reward_accuracy"],
                "mean implicit reward margin": figures["mean_implicit_reward_margin"],
                "beta": figures["beta"],
                "log-prob margin accuracy": figures["logprob_margin_accuracy"],
                "mean log-prob margin": figures["mean_logprob_margin"],
            },
        )
    )


def print_judge(figures: dict[str, Any]) -> None:
    out.print(
        _summary(
            f"AI judge {figures['model']} ({figures['backend']})",
            {
                "pairs": figures["pairs"],
                "accuracy, chosen shown first": figures["accuracy_chosen_first"],
                "accuracy, chosen shown second": figures["accuracy_chosen_second"],
                "accuracy, both orders": figures["accuracy_both_orders"],
                "position consistency": figures["position_consistency"],
                "first position picked": figures["first_position_rate"],
            },
        )
    )


def run_preference_eval(
    preferences: str,
    *,
    store: Path,
    settings: PreferenceEvalSettings,
    reward_model: Path | None,
    policy: Path | None,
    constitution: Path | None,
    judge: bool,
    judge_model: BackendSettings,
    seed: int,
    json_path: Path | None,
) -> dict[str, Any]:
    """Check every input, evaluate, print the tables and write ``json_path``; the report."""
    from tasks.constitution.model import load_constitution
    from tasks.evaluate.preference_eval_inputs import held_out_pairs, overlaps
    from tasks.train.lineage import read_lineage

    rules = load_constitution(constitution) if constitution else None
    use_judge = judge and rules is not None
    if reward_model is None and policy is None and not use_judge:
        raise CharterError(
            "nothing to evaluate: give --reward-model DIR, --policy DIR, or --constitution for the AI judge"
        )
    checkpoints = {str(path): read_lineage(path) for path in (reward_model, policy) if path is not None}
    if reward_model is not None and checkpoints[str(reward_model)]["kind"] != "reward":
        raise CharterError(
            f"{reward_model} holds a {checkpoints[str(reward_model)]['kind']} checkpoint, not a reward model"
        )
    pairs = held_out_pairs(preferences, store, settings)
    found = overlaps(pairs.records, checkpoints, store, settings.allow_overlap)
    if use_judge:
        judge_model = checked_backend(judge_model)
    shown = f" (the {len(pairs.records)} with the lowest pair ids)" if settings.limit else ""
    out.print(f"held-out preferences: {pairs.source}, {len(pairs.records)} of {pairs.total} records{shown}")
    if pairs.skipped:
        out.print(
            f"[yellow]{len(pairs.skipped)} rows are no usable pair and were left out, "
            f"the first: {escape(pairs.skipped[0])}[/yellow]",
            highlight=False,
        )
    for overlap in found:
        if overlap.set_id is None:
            out.print(
                f"[yellow]{overlap.checkpoint}: no training preference set to check overlap against[/yellow]"
            )
        elif overlap.overlapping:
            out.print(
                f"[yellow]{overlap.overlapping} pairs overlap the training set {overlap.set_id[:12]} of "
                f"{overlap.checkpoint}: included (--allow-overlap)[/yellow]"
            )
    if judge and rules is None:
        out.print("[dim]AI judge not measured: give --constitution (the judge reads its principles)[/dim]")

    from tasks.evaluate.preferences import evaluate_preferences

    judge_backend = None
    if use_judge:
        from tasks.backends.loading import load_backend

        judge_backend = load_backend(judge_model)
    report = evaluate_preferences(
        pairs,
        reward_model=str(reward_model) if reward_model else None,
        policy=str(policy) if policy else None,
        judge_backend=judge_backend,
        constitution=rules,
        seed=seed,
    )
    report["skipped_rows"] = pairs.skipped
    report["overlap"] = [overlap.as_dict() for overlap in found]
    report["settings"] = settings.model_dump()
    if report["reward_model"]:
        print_reward_model(report["reward_model"])
    if report["policy"]:
        print_policy(report["policy"])
    if report["judge"]:
        print_judge(report["judge"])
    if json_path is not None:
        from tasks.train.lineage import write_json_atomically

        write_json_atomically(json_path, report)
        out.print(f"[dim]figures written to {json_path}[/dim]")
    return report
