"""Run-report sections about training: the reward model, the policy (DPO or PPO), the scoreboard.

Each reads a checkpoint's lineage metrics (``tasks.train.checkpoints``) or the ``scoreboard.json``
beside it (``tasks.evaluate.evaluation``). A checkpoint the run did not train becomes a visible
"No training" note, so a reader never mistakes an absent model for a broken chart.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from tasks.report.blocks import (
    Block,
    Note,
    Record,
    Section,
    Table,
    change,
    curve,
    curve_table,
    figure,
    format_value,
    rate_bars,
    records_table,
)
from tasks.report.data import Checkpoint, ReportData
from tasks.report.plots import ReliabilityBin, reliability_diagram


def reward_headline(reward: Checkpoint | None) -> list[tuple[str, Any]]:
    """The headline row for the reward model: held-out accuracy before and after training."""
    if reward is None:
        return [("reward model", "not trained in this run")]
    before, after = reward.metrics.get("before") or {}, reward.metrics.get("after") or {}
    return [("reward model held-out accuracy", change(before.get("accuracy"), after.get("accuracy")))]


def policy_headline(policy: Checkpoint | None) -> list[tuple[str, Any]]:
    """The headline rows for the policy: which one, where its curves ended, and how often it
    beats its base overall."""
    if policy is None:
        return [("policy", "not trained in this run")]
    rows: list[tuple[str, Any]] = [("policy", f"{policy.kind}: {policy.path.name}")]
    if policy.kind == "dpo":
        rows.append(("final DPO loss", _last(policy.metrics.get("loss", []))))
    elif policy.kind == "grpo":
        steps = policy.metrics.get("steps", [])
        rows.append(("final GRPO mean reward", _last([s.get("reward") for s in steps])))
        rows.append(("final GRPO KL to reference (per token)", _last([s.get("kl") for s in steps])))
    else:
        steps = policy.metrics.get("steps", [])
        rows.append(("final PPO mean reward", _last([s.get("reward_mean") for s in steps])))
        rows.append(("final PPO KL to reference", _last([s.get("kl") for s in steps])))
    for win in (policy.scoreboard or {}).get("win_rates", []):
        if win["family"] == "(all)":
            rows.append((f"tuned beats base ({win['judge']})", win["win_rate"]))
    return rows


def _last(values: Sequence[Any]) -> Any:
    """The last logged value of a curve (steps that logged nothing are skipped)."""
    return next((v for v in reversed(values) if v is not None), None)


def length_warning(policy: Checkpoint | None) -> str | None:
    """The scoreboard's reward-hacking-through-length warning, if it raised one."""
    check = ((policy.scoreboard or {}) if policy else {}).get("length_check") or {}
    return check.get("warning")


def no_training(what: str) -> Note:
    return Note(f"No training: this run trained no {what}, so there is nothing to plot here.", "missing")


def lineage_table(checkpoint: Checkpoint) -> Table:
    lineage = checkpoint.lineage
    rows = [
        ("checkpoint", str(checkpoint.path)),
        ("kind", lineage.get("kind")),
        ("base model", lineage.get("base_model")),
        ("preference set", lineage.get("preference_set")),
        ("pairs", lineage.get("pairs")),
        ("pairs by source", lineage.get("pairs_by_source")),
        ("labels", lineage.get("labels")),
        ("constitutions", lineage.get("constitution_ids")),
        ("run", lineage.get("run_id")),
        ("created", lineage.get("created_at")),
    ]
    return Table(("lineage", "value"), tuple(rows), "What made this checkpoint")


def reward_section(data: ReportData) -> Section:
    reward = data.reward
    if reward is None:
        return Section("reward-model", "Reward model", (no_training("reward model"),))
    metrics = reward.metrics
    losses = {"training loss": [(s["step"], s["loss"]) for s in metrics.get("steps", [])]}
    blocks: list[Block] = [
        curve("reward-loss", "Reward model training loss per batch (Bradley-Terry)", "loss", losses),
        *_reward_evaluation(metrics.get("before"), metrics.get("after")),
        curve_table(losses, "Training curve"),
        lineage_table(reward),
    ]
    return Section("reward-model", "Reward model", tuple(blocks))


def _reward_evaluation(before: Record | None, after: Record | None) -> list[Block]:
    """Held-out metrics before and after training, the reliability diagram and accuracy by family."""
    if before is None and after is None:
        return [Note("Not evaluated: the reward model had no held-out pairs (eval fraction 0).")]
    evaluations = {"before training": before or {}, "after training": after or {}}
    return [
        _evaluation_table(evaluations),
        _reliability_figure(evaluations),
        _family_accuracy_table(evaluations),
    ]


def _evaluation_table(evaluations: dict[str, Record]) -> Table:
    keys = {
        "pairs": "held-out pairs",
        "decisive_pairs": "decisive pairs",
        "loss": "loss",
        "accuracy": "accuracy",
        "ece": "ECE",
    }
    rows = tuple((label, *(e.get(key) for e in evaluations.values())) for key, label in keys.items())
    return Table(("metric", *evaluations), rows, "Held-out evaluation")


def _reliability_figure(evaluations: dict[str, Record]) -> Block:
    """One series per evaluation that has bins (no decisive held-out pair: no bins, no series)."""
    series = [
        (name, [ReliabilityBin(b["mean_confidence"], b["accuracy"], b["count"]) for b in bins])
        for name, e in evaluations.items()
        if (bins := e.get("reliability"))
    ]
    caption = "Reward model reliability on held-out pairs: P(favoured side is better) by confidence bin"
    return figure("reward-calibration", caption, lambda: reliability_diagram(series, title=caption))


def _family_accuracy_table(evaluations: dict[str, Record]) -> Table:
    by_family = {name: e.get("accuracy_by_family") or {} for name, e in evaluations.items()}
    families = sorted({family for groups in by_family.values() for family in groups})
    rows = tuple(
        (family, *((groups.get(family) or {}).get("accuracy") for groups in by_family.values()))
        for family in families
    )
    return Table(("family", *evaluations), rows, "Held-out accuracy by family")


def policy_section(data: ReportData) -> Section:
    policy = data.policy
    if policy is None:
        return Section("policy", "Policy training", (no_training("policy (DPO, PPO or GRPO)"),))
    blocks = {"dpo": _dpo_blocks, "grpo": _grpo_blocks}.get(policy.kind, _ppo_blocks)(policy.metrics)
    algorithm = policy.lineage.get("algorithm", policy.kind)  # a grpo checkpoint's may be rloo
    return Section("policy", f"Policy training ({algorithm.upper()})", (*blocks, lineage_table(policy)))


def _dpo_blocks(metrics: Record) -> list[Block]:
    losses = {"DPO loss": list(enumerate(metrics.get("loss", []), start=1))}
    margins = {"reward margin": list(enumerate(metrics.get("reward_margin", []), start=1))}
    summary = Table(
        ("measure", "value"),
        (
            (
                "log-prob margin chosen - rejected",
                change(metrics.get("logprob_margin_before"), metrics.get("logprob_margin_after")),
            ),
            ("pairs the margin was measured on", metrics.get("margin_pairs")),
            ("training seconds", metrics.get("train_seconds")),
        ),
        "Before and after training",
    )
    return [
        curve("policy-loss", "DPO loss per logged step", "loss", losses),
        curve("dpo-reward-margin", "DPO implicit reward margin (chosen - rejected)", "margin", margins),
        summary,
        curve_table(losses | margins, "Training curves"),
    ]


def _ppo_blocks(metrics: Record) -> list[Block]:
    steps = metrics.get("steps", [])

    def points(key: str) -> list[tuple[float, Any]]:
        return [(s["step"], s.get(key)) for s in steps]

    rewards = {"mean reward": points("reward_mean")}
    kl = {"KL to reference": points("kl"), "KL coefficient": points("kl_coef")}
    losses = {"policy loss": points("policy_loss"), "value loss": points("value_loss")}
    others = {name: points(key) for name, key in (("entropy", "entropy"), ("clip fraction", "clip_fraction"))}
    return [
        curve("ppo-reward", "PPO mean reward per step", "reward", rewards),
        curve("ppo-kl", "PPO KL to the reference policy and the adaptive KL coefficient", "KL", kl),
        curve("policy-loss", "PPO policy and value losses", "loss", losses),
        curve_table(rewards | kl | losses | others, "Training curves"),
    ]


def _grpo_blocks(metrics: Record) -> list[Block]:
    """TRL's per-step log of a GRPO (or RLOO) run, under TRL's names: the weighted total reward, the
    KL to the reference and each reward function's mean (``rewards/<name>/mean``)."""
    steps = metrics.get("steps", [])

    def points(key: str) -> list[tuple[float, Any]]:
        return [(s["step"], s.get(key)) for s in steps]

    rewards = {"mean reward (weighted total)": points("reward")}
    functions = {name: points(f"rewards/{name}/mean") for name in metrics.get("reward_functions", [])}
    kl = {"KL to reference (per token)": points("kl")}
    others = {name: points(key) for name, key in (("loss", "loss"), ("entropy", "entropy"))}
    return [
        curve("grpo-reward", "GRPO mean reward per step", "reward", rewards),
        curve("grpo-reward-functions", "Each reward function's mean per step", "reward", functions),
        curve("grpo-kl", "GRPO KL to the reference policy (mean per token)", "KL", kl),
        curve_table(rewards | functions | kl | others, "Training curves"),
    ]


def scoreboard_section(data: ReportData) -> Section:
    policy = data.policy
    if policy is None:
        return Section("scoreboard", "Behaviour scoreboard", (no_training("policy to evaluate"),))
    if policy.scoreboard is None:
        note = Note(f"No scoreboard beside {policy.path}: run `charter eval` on this checkpoint.")
        return Section("scoreboard", "Behaviour scoreboard", (note,))
    board = policy.scoreboard
    return Section(
        "scoreboard",
        "Behaviour scoreboard",
        (
            *_family_blocks(board.get("families", [])),
            *_win_blocks(board.get("win_rates", [])),
            _length_note(board.get("length_check")),
        ),
    )


def _by_model(rows: Sequence[Record], key: str) -> dict[str, dict[str, Record]]:
    """``rows`` keyed by ``row[key]`` then by model ("base", "tuned")."""
    grouped: dict[str, dict[str, Record]] = defaultdict(dict)
    for row in rows:
        grouped[row[key]][row["model"]] = row
    return dict(grouped)


def _family_blocks(families: Sequence[Record]) -> list[Block]:
    grouped = _by_model(families, "family")
    names = sorted(grouped, key=lambda f: (f == "(all)", f))
    measures = {
        "reward": "reward",
        "rule_pass_rate": "rule pass",
        "escalation_rate": "escalation",
        "refusal_rate": "refusal",
        "words": "words",
        "kl_to_reference": "KL to base",
    }
    rows = []
    for family in names:
        base, tuned = grouped[family].get("base", {}), grouped[family].get("tuned", {})
        responses = tuned.get("responses", base.get("responses"))
        rows.append((family, responses, *(change(base.get(k), tuned.get(k)) for k in measures)))
    rule_pass = {
        model: [grouped[f].get(model, {}).get("rule_pass_rate") for f in names] for model in ("base", "tuned")
    }
    return [
        rate_bars(
            "scoreboard-rule-pass", "Constitution rules passed, base vs tuned, by family", names, rule_pass
        ),
        Table(
            ("family", "responses", *(f"{m} (base \u2192 tuned)" for m in measures.values())),
            tuple(rows),
            "Per family",
        ),
    ]


def _win_blocks(wins: Sequence[Record]) -> list[Block]:
    if not wins:
        return [Note("No win rates: the evaluation had neither a reward model nor an AI judge.")]
    names = [f"{w['judge']}: {w['family']}" for w in wins]
    return [
        rate_bars(
            "win-rates",
            "How often the tuned model beats its base (dashed: even)",
            names,
            {"tuned wins": [w["win_rate"] for w in wins]},
            reference=0.5,
        ),
        records_table(
            wins,
            {"judge": "judge", "family": "family", "prompts": "prompts", "win_rate": "win rate"},
            "Win rates",
        ),
    ]


def _length_note(check: Record | None) -> Note:
    if not check:
        return Note("No length check: the evaluation had no reward model scores.")
    if check.get("warning"):
        return Note(check["warning"], "warning")
    share = check.get("explained_share")
    return Note(
        f"Length check: reward gain {format_value(check.get('reward_gain'))}, length gain "
        f"{format_value(check.get('length_gain'))} words; length explains "
        f"{'none' if share is None else f'{share:.0%}'} of the gain."
    )
