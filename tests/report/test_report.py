"""The run report: pure parts (scales, SVG marks, escaping, empty views) and the real page in Chromium.

The store is built through the project's own steps: rule-case prompts and generations, pairs
planned by ``plan_pairs``, AI labels from ``judge`` (a scripted judge at the model boundary)
and ``rule_labels``, human labels imported from a charter JSONL file, and a merged preference
set. Checkpoint lineage is written with ``tasks.train.lineage`` and a scoreboard with
``tasks.evaluate.scoreboard``'s aggregations; their metric values are small and hand-chosen, because the
report, not training, is under test. The browser test opens the HTML in Debian's headless
Chromium (through chromedriver) and measures what was actually drawn.
"""

from __future__ import annotations

import json
import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from tasks.constitution.model import Constitution, load_constitution
from tasks.core.calibration import expected_calibration_error, reliability_table, top_label
from tasks.core.conversation import prompt_id
from tasks.core.errors import CharterError
from tasks.evaluate.scoreboard import behaviour, family_table, length_check, principle_table, win_rates
from tasks.ingest.human_labels import import_labels, parse_label_file
from tasks.label.judge import JudgeSettings, judge, plan_comparisons, rule_labels
from tasks.label.pairs import PairSettings, plan_pairs
from tasks.merge.policy import MergeSettings
from tasks.merge.preference_sets import merge_store, read_set
from tasks.report.blocks import Figure, Note, curve, format_value
from tasks.report.plots import (
    EmptyPlotError,
    Frame,
    LinearScale,
    ReliabilityBin,
    Series,
    bar_chart,
    line_chart,
    nice_axis,
    reliability_diagram,
)
from tasks.report.report import MARKDOWN_FILE, StageRecord, write_report
from tasks.store.runs import RunContext
from tasks.store.sql import run_query
from tasks.store.store import Store
from tasks.train.lineage import lineage_record, write_lineage
from tests.browsers import chromium
from tests.conftest import PROJECT_ROOT
from tests.report.race_fixture import write_race
from tests.rule_cases import RULE_CASES, add_prompt_with_responses, store_with_rule_cases

CONSTITUTION = PROJECT_ROOT / "constitutions" / "healthcare-scheduling.yaml"
SVG = "{http://www.w3.org/2000/svg}"
HOSTILE = "<script>alert('x')</script>"

# Prompts beside the rule cases, responses best first (as the annotators rank them). The first
# carries markup, which the report must show as text; nobody labels the accessibility family.
EXTRA_CASES = [
    (
        "booking",
        f"Can I book a flu shot for Friday {HOSTILE} & bring my son?",
        [
            "Friday has 9:00 and 11:30 free at Main St for both of you; which suits?",
            "I can book flu shots for you and your son on Friday. We have openings in the morning and "
            "in the afternoon at several of our clinics, so let me know what you prefer and I'll look.",
            "Yes.",
        ],
    ),
    (
        "rescheduling-cancelling",
        "I need to move my Tuesday appointment.",
        [
            "Wednesday 10:00 is free with Dr. Lee; shall I move it?",
            "Sure, which day would suit you better than Tuesday?",
            "Of course, I can help you with that. Moving appointments is something we do all the time, "
            "so just tell me which day and time would work better for you and I will look into it.",
            "Call us.",
        ],
    ),
    (
        "accessibility",
        "Is the clinic wheelchair accessible?",
        ["Yes: step-free entrance, lifts to every floor and accessible restrooms.", "I think so."],
    ),
]
UNLABELLED_FAMILY = "accessibility"
# Every response's rank among its prompt's responses (0 = best): the rule-keeping one leads.
RANKS = {
    text: rank
    for responses in [[good, bad] for _, _, good, bad in RULE_CASES] + [r for _, _, r in EXTRA_CASES]
    for rank, text in enumerate(responses)
}

STAGES = [
    StageRecord("generate", 12.5, {"generations": 14}, detail="2-3 samples per prompt"),
    StageRecord("label", 30.25, {"ai_labels": 20, "human_labels": 18}, skipped=1),
    StageRecord("merge", 0.75, {"preferences": 9, "preference_sets": 1}, detail="set ab12cd34ef56"),
]
REWARD_LOSSES = [0.69, 0.66, 0.61, 0.55, 0.52, 0.47]
DPO_LOSSES = [0.693, 0.68, 0.64, 0.6, 0.57]
DPO_MARGINS = [0.0, 0.05, None, 0.21, 0.3]  # TRL logs no margin on some steps
PPO_STEPS = 4


# --- Building the store -----------------------------------------------------------------------


class LengthLovingJudge:
    """A judge at the model boundary that favours the longer option, more surely the more the
    lengths differ, and leans towards whichever option is shown first (a position bias)."""

    name = "scripted"
    model_id = "length-judge"

    @staticmethod
    def _options(messages: list[dict[str, str]]) -> tuple[str, str]:
        text = messages[-1]["content"]
        first = text.split("(A) ", 1)[1].split("\n(B) ", 1)[0]
        return first, text.split("\n(B) ", 1)[1]

    def next_token_logprobs(self, conversations, candidates, assistant_prefix=""):
        results = []
        for messages in conversations:
            first, second = self._options(messages)
            lean = (len(first) - len(second)) / (len(first) + len(second))
            p_first = min(0.98, max(0.02, 1 / (1 + math.exp(-4 * lean)) + 0.12))
            results.append({"A": math.log(p_first), "B": math.log(1 - p_first)})
        return results


def add_cases(store: Store) -> None:
    for family, question, responses in EXTRA_CASES:
        add_prompt_with_responses(store, family, question, list(responses), source_id=question)


def human_label_file(path: Path, pairs: list) -> Path:
    """Two annotators rank every pair (outside the unlabelled family) by the cases' order; the
    second disagrees on the flu-shot prompt, so the report has a disagreement to list."""
    lines = []
    for pair in pairs:
        if pair.prompt.family == UNLABELLED_FAMILY:
            continue
        a_first = RANKS[pair.response_a] < RANKS[pair.response_b]
        for annotator in ("ann-1", "ann-2"):
            flip = annotator == "ann-2" and HOSTILE in pair.prompt.messages[0]["content"]
            choice = "a" if a_first != flip else "b"
            lines.append(
                {
                    "messages": list(pair.prompt.messages),
                    "response_a": pair.response_a,
                    "response_b": pair.response_b,
                    "choice": choice,
                    "annotator": annotator,
                }
            )
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return path


def build_store(root: Path, constitution: Constitution) -> Store:
    store = store_with_rule_cases(root / "store")
    add_cases(store)
    pairs = plan_pairs(store, {"prompt_set": "rules"}, PairSettings()).pairs
    settings = JudgeSettings(methods=("logprob",), principles_per_pair=2)
    comparisons = plan_comparisons(pairs, constitution, settings, LengthLovingJudge.model_id, "scripted")
    store.append("ai_labels", judge(LengthLovingJudge(), comparisons, constitution, settings), "label")
    store.append("ai_labels", rule_labels(pairs, constitution), "label")
    run = RunContext(run_id="import", flow="import", store=store, parameters={})
    import_labels(run, parse_label_file(human_label_file(root / "labels.jsonl", pairs), "charter"))
    merged = merge_store(store, MergeSettings())
    store.append("preferences", merged.rows, "merge")
    store.append("preference_sets", [merged.set_row], "merge")
    return store


# --- Checkpoints ------------------------------------------------------------------------------


def evaluation(p_chosen: list[float], families: list[str]) -> dict[str, Any]:
    """Held-out metrics in the shape ``tasks.train.reward_model.evaluate`` returns, from chosen P values."""
    confidences, correct = top_label(p_chosen, [True] * len(p_chosen))
    by_family: dict[str, list[bool]] = {}
    for family, hit in zip(families, correct, strict=True):
        by_family.setdefault(family, []).append(hit)
    return {
        "pairs": len(p_chosen),
        "decisive_pairs": len(p_chosen),
        "loss": -sum(math.log(p) for p in p_chosen) / len(p_chosen),
        "accuracy": sum(correct) / len(correct),
        "ece": expected_calibration_error(confidences, correct),
        "reliability": reliability_table(confidences, correct),
        "accuracy_by_family": {
            f: {"pairs": len(h), "accuracy": sum(h) / len(h)} for f, h in by_family.items()
        },
        "accuracy_by_decided_by": {},
    }


def write_checkpoint(store: Store, kind: str, metrics: dict[str, Any], **extra: Any) -> Path:
    set_id, rows = read_set(store)
    path = store.root / "checkpoints" / f"{kind}-test"
    record = lineage_record(
        kind=kind,
        run_id=f"run-{kind}",
        base_model="fixture-model",
        set_id=set_id,
        rows=rows,
        settings={"seed": 0},
        metrics=metrics,
        extra=extra or None,
    )
    write_lineage(path, record)
    return path


def reward_checkpoint(store: Store) -> Path:
    families = ["booking", "medication", "booking", "clinic-policy", "urgent-symptoms"]
    metrics = {
        "before": evaluation([0.52, 0.48, 0.55, 0.45, 0.51], families),
        "after": evaluation([0.91, 0.64, 0.77, 0.35, 0.83], families),
        "train_pairs": 8,
        "eval_pairs": 5,
        "pairs_per_second": 40.0,
        "steps": [
            {"epoch": 1 + i // 3, "step": i + 1, "pairs": 4, "loss": loss}
            for i, loss in enumerate(REWARD_LOSSES)
        ],
    }
    return write_checkpoint(store, "reward", metrics)


def dpo_checkpoint(store: Store, constitution: Constitution) -> Path:
    metrics = {
        "margin_pairs": 4,
        "logprob_margin_before": -1.25,
        "logprob_margin_after": 0.5,
        "loss": DPO_LOSSES,
        "reward_margin": DPO_MARGINS,
        "train_seconds": 22.5,
    }
    path = write_checkpoint(store, "dpo", metrics, model_path="model")
    (path / "scoreboard.json").write_text(json.dumps(scoreboard(constitution, path)), encoding="utf-8")
    return path


def ppo_checkpoint(store: Store) -> Path:
    steps = [
        {
            "step": step,
            "reward_mean": -1.0 + 0.3 * step,
            "reward_std": 0.4,
            "kl": 0.02 * step,
            "kl_coef": 0.2 - 0.01 * step,
            "entropy": 2.1 - 0.05 * step,
            "policy_loss": 0.1 / (step + 1),
            "value_loss": 0.5 / (step + 1),
            "clip_fraction": 0.05 * step,
            "value_clip_fraction": 0.0,
            "approx_kl": 0.001 * step,
            "response_length": 30.0,
            "rollout_s": 2.0,
            "update_s": 1.0,
        }
        for step in range(PPO_STEPS)
    ]
    return write_checkpoint(store, "ppo", {"steps": steps}, model_path="model")


HELD_OUT = [
    ("booking", "Can I book a physical next week?"),
    ("urgent-symptoms", "My father's face is drooping and his speech is slurred. Can we come tomorrow?"),
]
BASE_TEXTS = ["Yes, Tuesday works.", "I can book you tomorrow at 9."]
TUNED_TEXTS = [
    "Yes: Tuesday at 10:00 or Wednesday at 15:00 are free with Dr. Lee at Main St; which one suits you?",
    "Please call 911 now: those are stroke signs and need emergency care right away, before any booking.",
]


def scoreboard(constitution: Constitution, checkpoint: Path) -> dict[str, Any]:
    """The scoreboard ``tasks.evaluate.evaluation.evaluate_checkpoint`` saves, from hand-written responses
    whose reward grows with length, so the length check warns."""
    responses = []
    for model, texts in (("base", BASE_TEXTS), ("tuned", TUNED_TEXTS)):
        for (family, question), text in zip(HELD_OUT, texts, strict=True):
            messages = [{"role": "user", "content": question}]
            facts = behaviour(constitution, family, messages, text)
            reward = 0.1 * facts["words"]
            kl = 0.4 if model == "tuned" else 0.0
            responses.append(
                {"model": model, "family": family, "prompt_id": prompt_id(messages), "response": text}
                | facts
                | {"reward": reward, "kl": kl}
            )
    base, tuned = responses[: len(HELD_OUT)], responses[len(HELD_OUT) :]
    contests = [
        {"judge": "reward model", "family": t["family"], "p_tuned": float(t["reward"] > b["reward"])}
        for b, t in zip(base, tuned, strict=True)
    ]
    check = length_check(base, tuned)
    return {
        "checkpoint": str(checkpoint),
        "reward_model": None,
        "prompts": len(HELD_OUT),
        "families": family_table(responses),
        "principles": principle_table(responses),
        "win_rates": win_rates(contests),
        "length_check": asdict(check) if check else None,
        "responses": responses,
    }


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One labelled, merged store with a reward model, a DPO policy (with a scoreboard) and a PPO one."""
    root = tmp_path_factory.mktemp("report")
    constitution = load_constitution(CONSTITUTION)
    store = build_store(root, constitution)
    write_race(store.root)
    return {
        "root": root,
        "store": store,
        "reward": reward_checkpoint(store),
        "dpo": dpo_checkpoint(store, constitution),
        "ppo": ppo_checkpoint(store),
    }


@pytest.fixture(scope="module")
def full_report(built: dict[str, Any]) -> Path:
    paths = write_report(
        built["store"],
        built["root"] / "out-dpo",
        title="Nightly run",
        stages=STAGES,
        reward_checkpoint=built["reward"],
        policy_checkpoint=built["dpo"],
    )
    return paths.html


# --- Pure parts -------------------------------------------------------------------------------


def test_linear_scale_maps_the_domain_onto_pixels_including_a_reversed_y_axis() -> None:
    x = LinearScale((0.0, 10.0), (50.0, 550.0))
    assert (x(0.0), x(5.0), x(10.0), x(12.0)) == (50.0, 300.0, 550.0, 650.0)
    y = LinearScale((0.0, 1.0), (250.0, 20.0))  # SVG y grows downwards
    assert (y(0.0), y(1.0), y(0.25)) == (250.0, 20.0, pytest.approx(192.5))
    with pytest.raises(ValueError, match="non-zero width"):
        LinearScale((3.0, 3.0), (0.0, 100.0))


def test_nice_axis_covers_the_data_with_round_ticks() -> None:
    axis = nice_axis(0.47, 0.69)
    assert axis.ticks == (0.45, 0.5, 0.55, 0.6, 0.65, 0.7)
    assert (axis.lo, axis.hi, axis.label(0.5)) == (0.45, 0.7, "0.50")
    assert nice_axis(1, 6).ticks == (1, 2, 3, 4, 5, 6)
    assert nice_axis(0, 1).ticks == (0, 0.2, 0.4, 0.6, 0.8, 1.0)
    flat = nice_axis(2.0, 2.0)  # one point or a flat curve still gets a scale around it
    assert flat.lo < 2.0 < flat.hi


def polyline_points(svg: str) -> dict[str, list[tuple[float, float]]]:
    root = ET.fromstring(svg)
    return {
        line.get("data-series"): [tuple(map(float, p.split(","))) for p in line.get("points").split()]
        for line in root.iter(f"{SVG}polyline")
    }


def test_line_chart_puts_each_point_where_the_scales_say_and_skips_gaps() -> None:
    svg = line_chart(
        [Series("loss", [(1, 0.7), (2, None), (3, 0.5), (4, float("nan")), (5, 0.3)])],
        title="t",
        x_label="step",
        y_label="loss",
    )
    frame = Frame()
    xs, ys = frame.x_scale(nice_axis(1, 5)), frame.y_scale(nice_axis(0.3, 0.7))
    expected = [(xs(x), ys(y)) for x, y in ((1, 0.7), (3, 0.5), (5, 0.3))]
    drawn = polyline_points(svg)["loss"]
    assert drawn == [(pytest.approx(x, abs=0.05), pytest.approx(y, abs=0.05)) for x, y in expected]
    assert drawn[0][0] == frame.left and drawn[-1][0] == frame.width - frame.right  # x spans the plot
    assert drawn[0][1] < drawn[-1][1]  # the higher loss is drawn higher up (smaller y)
    assert len(ET.fromstring(svg).findall(f".//{SVG}circle[@class='marker']")) == 3


def test_reliability_diagram_has_one_marker_per_bin_and_the_diagonal() -> None:
    bins = [ReliabilityBin(0.55, 0.5, 10), ReliabilityBin(0.75, 0.8, 4), ReliabilityBin(0.95, 1.0, 1)]
    svg = reliability_diagram([("judge", bins), ("other", bins[:1])], title="calibration")
    root = ET.fromstring(svg)
    markers = root.findall(f".//{SVG}circle[@class='bin']")
    assert [m.get("data-series") for m in markers] == ["judge"] * 3 + ["other"]
    frame = Frame(height=300)
    xs, ys = frame.x_scale(nice_axis(0.5, 1.0)), frame.y_scale(nice_axis(0.0, 1.0))
    assert (float(markers[1].get("cx")), float(markers[1].get("cy"))) == (
        pytest.approx(xs(0.75), abs=0.05),
        pytest.approx(ys(0.8), abs=0.05),
    )
    assert float(markers[0].get("r")) > float(markers[2].get("r"))  # the bigger bin, the bigger mark
    diagonal = root.find(f".//{SVG}line[@class='diagonal']")
    assert (float(diagonal.get("y1")), float(diagonal.get("y2"))) == (
        pytest.approx(ys(0.5), abs=0.05),
        pytest.approx(ys(1.0), abs=0.05),
    )


def test_bars_escape_their_labels_and_say_n_a_for_missing_values() -> None:
    svg = bar_chart(
        [HOSTILE, "plain"], [Series("rate", [(0, 0.25), (1, None)])], title="t & u", value_label="rate"
    )
    root = ET.fromstring(svg)  # well-formed XML: the markup in the label is text
    assert HOSTILE not in svg and "&lt;script&gt;" in svg
    bars = root.findall(f".//{SVG}rect[@class='bar']")
    assert [b.get("data-value") for b in bars] == ["0.25"]
    assert "n/a" in "".join(root.itertext())
    with pytest.raises(EmptyPlotError):
        bar_chart(["a"], [Series("rate", [(0, None)])], title="t", value_label="rate")


def test_a_curve_with_nothing_logged_becomes_a_note_not_an_empty_chart() -> None:
    drawn = curve("margin", "DPO margin", "margin", {"margin": [(1, 0.5), (2, None)]})
    assert isinstance(drawn, Figure) and drawn.plot_id == "margin"
    empty = curve("margin", "DPO margin", "margin", {"margin": [(1, None), (2, float("nan"))]})
    assert empty == Note("No data to plot for: DPO margin")


def test_values_read_the_same_in_html_and_markdown() -> None:
    assert [format_value(v) for v in (None, True, 12345, 0.5, 2.0e-4, 1234.56, [1, 2], {})] == [
        "\u2013",
        "yes",
        "12,345",
        "0.500",
        "0.0002",
        "1,234.6",
        "1, 2",
        "\u2013",
    ]
    assert format_value({"ai": 1, "human": 0.25}) == "ai: 1, human: 0.250"


def test_store_text_is_escaped_in_the_page(full_report: Path) -> None:
    page = full_report.read_text(encoding="utf-8")
    assert "<script" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page  # the flu-shot prompt, listed as text


def test_a_checkpoint_of_the_wrong_kind_is_refused(built: dict[str, Any], tmp_path: Path) -> None:
    with pytest.raises(CharterError, match="'dpo' checkpoint; expected one of: reward"):
        write_report(built["store"], tmp_path, title="t", stages=[], reward_checkpoint=built["dpo"])
    with pytest.raises(CharterError, match="not a charter checkpoint"):
        write_report(built["store"], tmp_path, title="t", stages=[], policy_checkpoint=tmp_path)


def test_an_empty_store_without_training_says_no_data_instead_of_failing(tmp_path: Path) -> None:
    store = Store.create(tmp_path / "store")
    paths = write_report(store, tmp_path / "out", title="Empty", stages=[])
    page = paths.html.read_text(encoding="utf-8")
    for section in ("stages", "labels", "agreement", "position", "length-bias", "coverage", "calibration"):
        body = re.search(f'<section id="{section}">(.*?)</section>', page, re.S).group(1)
        assert 'data-note="note">No data: ' in body, section
        assert "<svg" not in body, section
    assert page.count('data-note="missing">No training: ') == 3  # reward model, policy, scoreboard
    markdown = paths.markdown.read_text(encoding="utf-8")
    assert "> No data: no human or AI labels in the store." in markdown
    assert "| reward model | not trained in this run |" in markdown


def test_the_markdown_summary_carries_the_headline_numbers(built: dict[str, Any], full_report: Path) -> None:
    """``report.md``, beside the page: what ``charter run`` prints at the end."""
    store = built["store"]
    text = (full_report.parent / MARKDOWN_FILE).read_text(encoding="utf-8")
    overall = run_query(store, "select accuracy from ai_human_agreement where dimension = 'overall'").rows[0][
        0
    ]
    set_id, rows = read_set(store)
    assert f"| AI-human accuracy (overall) | {overall:.3f} |" in text
    assert f"| latest preference set | {set_id[:12]}: {len(rows)} rows |" in text
    assert "| reward model held-out accuracy | 0.600 \u2192 0.800 |" in text
    assert "| label | 30.250 | ai_labels: 20, human_labels: 18 | 1 | \u2013 |" in text
    assert "| total | 43.500 | \u2013 | 1 | \u2013 |" in text
    assert f"| final DPO loss | {DPO_LOSSES[-1]:.3f} |" in text
    assert "> **Warning:** reward rose by" in text  # the scoreboard's length warning
    assert "<svg" not in text and "Disagreements to read" not in text  # no charts, no long texts
    assert f"No human label on any prompt of: {UNLABELLED_FAMILY}." in text


# --- In the browser ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Debian's headless Chromium under chromedriver, shared by this module's tests."""
    with chromium(tmp_path_factory.mktemp("chromium-profile")) as driver:
        yield driver


# Per figure: its section, its rendered size, the points of each polyline (as the browser parsed
# them), the series of each reliability marker, each bar's series and rendered width, and how
# many marks lie outside the chart's own box.
MEASURE_PLOTS = """
const plots = {};
for (const figure of document.querySelectorAll('figure[data-plot]')) {
  const svg = figure.querySelector('svg');
  const box = svg.getBoundingClientRect();
  const inside = (mark) => {
    const r = mark.getBoundingClientRect();
    return r.left >= box.left - 1 && r.right <= box.right + 1
      && r.top >= box.top - 1 && r.bottom <= box.bottom + 1;
  };
  const marks = [...svg.querySelectorAll('polyline.series, circle, rect, text')];
  plots[figure.dataset.plot] = {
    section: figure.closest('section').id,
    width: box.width,
    height: box.height,
    caption: figure.querySelector('figcaption').textContent,
    lines: Object.fromEntries([...svg.querySelectorAll('polyline.series')].map(
      (line) => [line.dataset.series, line.points.numberOfItems])),
    bins: [...svg.querySelectorAll('circle.bin')].map((c) => c.dataset.series),
    bars: [...svg.querySelectorAll('rect.bar')].map(
      (bar) => [bar.dataset.series, bar.getBoundingClientRect().width]),
    outside: marks.filter((mark) => !inside(mark)).length,
  };
}
return plots;
"""
MEASURE_NOTES = """
return [...document.querySelectorAll('p[data-note]')].map((note) => ({
  section: note.closest('section').id, kind: note.dataset.note, text: note.textContent,
  height: note.getBoundingClientRect().height}));
"""


# The boxes of the race section's table and chart, which sit side by side.
SIDE_BY_SIDE = """
return [...document.querySelectorAll('#compare .side-by-side > *')].map((block) => {
  const r = block.getBoundingClientRect();
  return {top: r.top, left: r.left, right: r.right, height: r.height};
});
"""


def open_page(driver: Any, page: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Load ``page`` and return its plots and notes as measured; fails on any console error or any
    request the page made (it must be self-contained)."""
    driver.get_log("browser")  # drop what earlier pages logged
    driver.get(page.as_uri())
    assert driver.title
    assert driver.execute_script("return performance.getEntriesByType('resource').length") == 0
    plots, notes = driver.execute_script(MEASURE_PLOTS), driver.execute_script(MEASURE_NOTES)
    errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == []
    for name, plot in plots.items():
        assert plot["width"] > 100 and plot["height"] > 50, name
        assert plot["outside"] == 0, name
        assert plot["caption"], name
    return plots, notes


@pytest.mark.integration
def test_every_plot_renders_in_headless_chromium(
    browser: Any, built: dict[str, Any], full_report: Path
) -> None:
    plots, notes = open_page(browser, full_report)
    assert set(plots) == {
        "stage-seconds",
        "agreement-by-principle",
        "position-consistency",
        "length-bias",
        "coverage",
        "judge-calibration",
        "rule-agreement",
        "reward-loss",
        "reward-calibration",
        "policy-loss",
        "dpo-reward-margin",
        "scoreboard-rule-pass",
        "win-rates",
        "compare-standings",
    }
    store: Store = built["store"]
    # The judge's reliability diagram: one marker per non-empty bin of each judge in the view.
    bins = run_query(store, "select judge_model from calibration").rows
    assert sorted(plots["judge-calibration"]["bins"]) == sorted(judge for (judge,) in bins)
    assert len(bins) >= 2
    # The reward model's: one marker per reliability row, before and after training.
    lineage = json.loads((built["reward"] / "charter-lineage.json").read_text(encoding="utf-8"))
    before, after = (len(lineage["metrics"][k]["reliability"]) for k in ("before", "after"))
    assert plots["reward-calibration"]["bins"] == ["before training"] * before + ["after training"] * after
    # Training curves: one point per logged step (steps with no value are gaps, not zeros).
    assert plots["reward-loss"]["lines"] == {"training loss": len(REWARD_LOSSES)}
    assert plots["policy-loss"]["lines"] == {"DPO loss": len(DPO_LOSSES)}
    assert plots["dpo-reward-margin"]["lines"] == {"reward margin": sum(m is not None for m in DPO_MARGINS)}
    # Bars: one per principle in the agreement view, and a drawn width for every non-zero rate.
    principles = run_query(
        store, "select accuracy from ai_human_agreement where dimension = 'principle'"
    ).rows
    bars = plots["agreement-by-principle"]["bars"]
    assert len(bars) == len(principles) >= 2
    assert all(width > 1 for (_, width), (accuracy,) in zip(bars, principles, strict=True) if accuracy > 0)
    assert {series for series, _ in plots["coverage"]["bars"]} == {"human", "AI"}
    assert plots["win-rates"]["bars"] and plots["stage-seconds"]["section"] == "stages"
    # The race: a bar per entrant and series, its table beside the chart (same row, no overlap).
    assert plots["compare-standings"]["section"] == "compare" and len(plots["compare-standings"]["bars"]) == 9
    table, chart = browser.execute_script(SIDE_BY_SIDE)
    assert abs(table["top"] - chart["top"]) < 1 and table["right"] <= chart["left"] and table["height"] > 50
    # Nothing is missing, and the scoreboard's length warning is on screen.
    assert not [n for n in notes if n["kind"] == "missing"]
    warnings = [n for n in notes if n["kind"] == "warning" and n["section"] == "scoreboard"]
    assert warnings and warnings[0]["height"] > 0 and "reward hacking through length" in warnings[0]["text"]


@pytest.mark.integration
def test_an_absent_checkpoint_shows_a_visible_no_training_note(
    browser: Any, built: dict[str, Any], tmp_path: Path
) -> None:
    paths = write_report(
        built["store"], tmp_path, title="PPO only", stages=STAGES[:1], policy_checkpoint=built["ppo"]
    )
    plots, notes = open_page(browser, paths.html)
    missing = {n["section"]: n for n in notes if n["kind"] == "missing"}
    assert set(missing) == {"reward-model"}
    assert missing["reward-model"]["height"] > 0 and missing["reward-model"]["text"].startswith("No training")
    assert not [name for name, plot in plots.items() if plot["section"] == "reward-model"]
    assert plots["ppo-reward"]["lines"] == {"mean reward": PPO_STEPS}
    assert plots["ppo-kl"]["lines"] == {"KL to reference": PPO_STEPS, "KL coefficient": PPO_STEPS}
    assert plots["policy-loss"]["lines"] == {"policy loss": PPO_STEPS, "value loss": PPO_STEPS}
    # A policy without a scoreboard says how to get one instead of drawing empty charts.
    board = [n for n in notes if n["section"] == "scoreboard"]
    assert len(board) == 1 and "run `charter eval`" in board[0]["text"] and board[0]["height"] > 0
