"""The impact flow on a small labelled store (``conftest``), as users run it: in-process with a
scripted judge at the model boundary, through the real ``charter`` command, and as a pipeline stage.

Every figure the flow reports is recomputed here from the stored rows: the labels before and
after, matched on pair, method, judge and settings (rules: on the rule), and the human votes.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

import tasks.impact.prefect_tasks as impact_tasks
from tasks.constitution.model import load_constitution
from tasks.store.sql import run_query
from tasks.store.store import Store
from tests.conftest import run_charter, shared_prefect_api
from tests.impact.conftest import (
    BUNDLED,
    DOSING,
    JUDGE_SPEC,
    NEW_COMPARISON,
    ScriptedJudge,
    comparison_edit,
    rule_edit,
)

pytestmark = pytest.mark.integration

PRINCIPLE = "no-dosing-advice"
MATCH_KEY = ("pair_id", "response_a_id", "method", "judge_model", "judge_backend", "params", "rule_id")


def _no_model(spec: object) -> None:
    raise AssertionError("this impact run needs no model, yet it opened a backend")


def _run(store: Store, new: Path, monkeypatch: pytest.MonkeyPatch, backend: object) -> object:
    from flows.impact import impact

    monkeypatch.setattr(impact_tasks, "open_backend", backend)
    return impact(store=str(store.root), constitution=str(new), against=str(BUNDLED), backend=JUDGE_SPEC)


def _versions(store: Store, new: Path) -> tuple[list[dict], dict[tuple, dict]]:
    """The principle's labels under OLD, and those under NEW by match key."""
    old_hash = load_constitution(BUNDLED).principle(PRINCIPLE).principle_hash
    new_hash = load_constitution(new).principle(PRINCIPLE).principle_hash
    rows = [row for row in store.read("ai_labels").to_pylist() if row["principle_id"] == PRINCIPLE]
    before = [row for row in rows if row["principle_hash"] == old_hash]
    after = {tuple(row[k] for k in MATCH_KEY): row for row in rows if row["principle_hash"] == new_hash}
    return before, after


def _human_majority(store: Store) -> dict[str, str]:
    """Each pair's decisive human vote (one annotator per pair in the fixture)."""
    votes: dict[str, Counter[str]] = {}
    for row in store.read("human_labels").to_pylist():
        votes.setdefault(row["pair_id"], Counter())[row["vote"]] += 1
    return {pair: counts.most_common(1)[0][0] for pair, counts in votes.items()}


def _expected(store: Store, new: Path, method: str) -> dict[str, object]:
    """The impact view's figures for ``method``, recomputed from the rows."""
    before, after = _versions(store, new)
    keyed = [(row, tuple(row[k] for k in MATCH_KEY)) for row in before if row["method"] == method]
    pairs = [(row, after[key]) for row, key in keyed if key in after]
    majority = _human_majority(store)
    human = [
        (b, a, majority[b["pair_id"]]) for b, a in pairs if majority.get(b["pair_id"]) in ("first", "second")
    ]

    def kappa(side: int) -> float:
        accuracy = sum(labels[side]["vote"] == vote for *labels, vote in human) / len(human)
        share = {
            v: sum(labels[side]["vote"] == v for *labels, _ in human) / len(human)
            for v in ("first", "second")
        }
        people = {v: sum(vote == v for *_, vote in human) / len(human) for v in ("first", "second")}
        expected = share["first"] * people["first"] + share["second"] * people["second"]
        return round((accuracy - expected) / (1 - expected), 4)

    return {
        "labels_before": sum(row["method"] == method for row in before),
        "rejudged": len(pairs),
        "flipped": sum(b["vote"] != a["vote"] for b, a in pairs),
        "mean_abs_delta_p": round(sum(abs(a["p_a"] - b["p_a"]) for b, a in pairs) / len(pairs), 4),
        "human_pairs": len({b["pair_id"] for b, _, _ in human}),
        "accuracy_before": round(sum(b["vote"] == v for b, _, v in human) / len(human), 4),
        "accuracy_after": round(sum(a["vote"] == v for _, a, v in human) / len(human), 4),
        "kappa_before": kappa(0),
        "kappa_after": kappa(1),
    }


def _view_row(result: object, method: str) -> dict:
    (row,) = [r for r in result.summary.labels if r["method"] == method]  # type: ignore[attr-defined]
    return row


def test_a_comparison_edit_judges_only_that_principles_labels_again_and_reports_what_changed(
    impact_store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    new = comparison_edit(tmp_path)
    judged = ScriptedJudge("after")
    result = _run(impact_store, new, monkeypatch, lambda spec: judged)
    # Only the 14 logprob labels of no-dosing-advice, both orders each, under NEW's instruction.
    assert len(judged.asks) == 2 * len(DOSING) == 28
    assert all(NEW_COMPARISON in ask for ask in judged.asks)
    # 14 re-judged + 21 rule labels re-checked under NEW's hash; efficient-booking untouched.
    assert result.rows_added["ai_labels"] == 35
    before, after = _versions(impact_store, new)
    assert len(after) == 35 and len(before) == 35
    for method in ("logprob", "rule"):
        view = _view_row(result, method)
        assert {key: view[key] for key in _expected(impact_store, new, method)} == _expected(
            impact_store, new, method
        )
    logprob = _view_row(result, "logprob")
    # Worked from the scripts: cases 0, 1, 4, 6, 12 and 13 change side; on the ten human pairs
    # the judge goes from 5 to 9 right (3 and 7 prefer the bad response, which 7 gets after).
    assert (logprob["flipped"], logprob["accuracy_before"], logprob["accuracy_after"]) == (6, 0.5, 0.9)
    assert (logprob["consistent_before"], logprob["consistent_after"]) == (0.5714, 1.0)
    assert _view_row(result, "rule")["flipped"] == 0  # rules unchanged: the same verdicts, new ids
    # The rules decide cases 0-11 either way: only the judge's own rows change.
    total = result.summary.preferences.total
    assert (total.added, total.dropped, total.flipped) == (1, 0, 1)  # case 13 added, case 12 flipped
    markdown = Path(result.report_markdown).read_text(encoding="utf-8")
    assert "| no-dosing-advice | logprob | 14 | 0 | 6 |" in markdown
    assert (Path(result.report_html).parent / "impact.json").is_file()

    rerun = _run(impact_store, new, monkeypatch, _no_model)  # content-addressed: nothing to do
    assert rerun.rows_added.get("ai_labels", 0) == 0 and rerun.batches_skipped == rerun.batches == 1


def test_a_rule_only_edit_rechecks_the_rules_and_carries_the_verdicts_without_a_model(
    impact_store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    new = rule_edit(tmp_path)
    result = _run(impact_store, new, monkeypatch, _no_model)
    assert result.batches == 0
    assert result.summary.work == {"judged": 0, "carried": 14, "rule_labels": 18, "rechecked_pairs": 17}
    assert result.rows_added["ai_labels"] == 14 + 18
    for method in ("logprob", "rule"):
        view = _view_row(result, method)
        assert {key: view[key] for key in ("labels_before", "rejudged", "flipped")} == {
            key: _expected(impact_store, new, method)[key] for key in ("labels_before", "rejudged", "flipped")
        }
    rule = _view_row(result, "rule")
    # "2 tablets" (cases 9-11) no longer breaks no-dose-amounts: 3 rule labels gone, none flipped.
    assert (rule["labels_before"], rule["rejudged"], rule["not_rejudged"], rule["flipped"]) == (21, 18, 3, 0)
    assert _view_row(result, "logprob")["mean_abs_delta_p"] == 0.0
    total = result.summary.preferences.total
    assert (total.added, total.dropped, total.flipped) == (0, 1, 1)  # case 10 dropped, case 11 flipped


def test_charter_constitution_impact_runs_a_rule_edit_with_a_judge_it_could_not_load(
    impact_store: Store, tmp_path: Path
) -> None:
    # "scripted/judge" is no model anyone can load (this machine is offline): the run succeeds
    # only because a rule edit needs none.
    new = rule_edit(tmp_path)
    args = ["constitution", "impact", str(BUNDLED), str(new), "--store", str(impact_store.root)]
    done = run_charter(*args, "--backend", "hf", "--model", "scripted/judge", env=shared_prefect_api())
    assert done.returncode == 0, done.stderr
    assert "0 to judge again, 14 verdicts to carry over; rules checked again on 17 pairs" in done.stdout
    assert "| no-dosing-advice | rule | 18 | 3 | 0 |" in done.stdout
    rows = run_query(impact_store, "select method, rejudged from impact order by method").rows
    assert rows == [("logprob", 14), ("rule", 18)]
    same = run_charter(
        "constitution", "impact", str(BUNDLED), str(BUNDLED), "--store", str(impact_store.root)
    )
    assert (same.returncode, same.stdout.strip()) == (
        0,
        "no principle's meaning differs between OLD and NEW: nothing to judge again",
    )
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        new.read_text(encoding="utf-8").replace("  - id: no-diagnosis", "  - idd: no-diagnosis")
    )
    failed = run_charter(
        "constitution", "impact", str(BUNDLED), str(broken), "--store", str(impact_store.root)
    )
    assert failed.returncode == 1
    line = broken.read_text(encoding="utf-8").splitlines().index("  - idd: no-diagnosis") + 1
    assert f"{broken}:{line} [principles[2].idd]: unknown field" in failed.stderr
    assert "Traceback" not in failed.stderr


def test_the_pipeline_impact_stage_measures_its_constitution_against_the_config_s_old_one(
    impact_store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.pipeline import pipeline

    new = comparison_edit(tmp_path)
    config = tmp_path / "pipeline.yaml"
    prompts = BUNDLED.parents[1] / "datasets" / "healthcare-scheduling" / "prompts.jsonl"
    config.write_text(
        json.dumps(
            {
                "store": str(impact_store.root),
                "constitution": new.name,
                "prompts": {"file": str(prompts)},
                "judge_model": {"backend": "hf", "model": "scripted/judge"},
                "label": {"judge": {"methods": ["logprob"]}},
                "impact": {"against": str(BUNDLED)},
            }
        ),
        encoding="utf-8",
    )
    monkeypatch.setattr(impact_tasks, "open_backend", lambda spec: ScriptedJudge("after"))
    result = pipeline(config=str(config), stages=["impact"])
    (stage,) = result.stages
    assert stage.name == "impact" and stage.rows_added["ai_labels"] == 35
    report = Path(result.report_markdown).read_text(encoding="utf-8")
    assert "## Constitution impact" in report and "| no-dosing-advice | logprob | 14 | 0 | 6 |" in report
