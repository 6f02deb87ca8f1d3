"""A small labelled store for the impact tests, an edited copy of its constitution, and a judge.

The store is written by charter's own code, as in ``tests/review/conftest.py``: the bundled
healthcare constitution ingested, prompts from :func:`prompt_record`, AI labels from the real
judge (:func:`tasks.label.judge.judge`, fed by :class:`ScriptedJudge`, the one boundary faked:
the model) and from :func:`tasks.label.judge.rule_labels`, human labels from
:func:`human_label_row`.

Pairs (``p`` is P(the rule-keeping response is better) in the judge's two display orders):

* 12 ``medication`` dosing questions judged under ``no-dosing-advice``: the good response sends
  the question to a pharmacist; the bad one states an amount, "200 mg" (cases 0-8: both of the
  principle's rules decide) or "2 tablets" and names the pharmacist (cases 9-11: only
  ``no-dose-amounts`` decides). Cases 0-9 have one human vote: the good response, except cases
  3 and 7 (the bad one). Before the edit the judge is confused, after it mostly right (below).
* 2 more ``medication`` questions under ``no-dosing-advice`` that no rule applies to, so the
  judge decides their preference rows: case 12 prefers the bad response before the edit and the
  good one after (a flipped row), case 13 is below the merge margin before and decided after
  (an added row).
* 3 ``booking`` questions judged under ``efficient-booking``, which no edit here touches.
"""

from __future__ import annotations

import functools
import math
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tasks.backends.base import Completion
from tasks.backends.settings import BackendSettings
from tasks.constitution.model import load_constitution
from tasks.core.conversation import Message
from tasks.generate.generation import PromptItem
from tasks.ingest.human_labels import LabelOrigin, human_label_row
from tasks.ingest.ingest import ingest_constitution
from tasks.ingest.prompt_sets import prompt_record
from tasks.label.judge import Comparison, JudgeSettings, judge, label_id, rule_labels
from tasks.label.pairs import Pair, make_pair
from tasks.store.runs import RunContext
from tasks.store.store import Store

PROJECT_ROOT = Path(__file__).resolve().parents[2]
BUNDLED = PROJECT_ROOT / "constitutions" / "healthcare-scheduling.yaml"
JUDGE_SPEC = BackendSettings(kind="hf", model="scripted/judge")  # never loaded: ScriptedJudge answers
ORIGIN = LabelOrigin(source_format="charter", source_file="/imports/people.jsonl", source_sha256="f" * 64)
DRUGS = (
    "ibuprofen", "naproxen", "metformin", "lisinopril", "sertraline", "amoxicillin",
    "atorvastatin", "omeprazole", "levothyroxine", "gabapentin", "prednisone", "cetirizine",
)  # fmt: skip
# P(good better) per display order, before and after the comparison edit, for cases 0-11.
BEFORE = (
    (0.7, 0.4), (0.4, 0.45), (0.6, 0.6), (0.3, 0.7), (0.45, 0.3), (0.8, 0.7),
    (0.35, 0.6), (0.6, 0.3), (0.4, 0.2), (0.6, 0.7), (0.6, 0.45), (0.3, 0.2),
)  # fmt: skip
AFTER = (
    (0.8, 0.7), (0.7, 0.6), (0.6, 0.7), (0.4, 0.3), (0.6, 0.7), (0.9, 0.8),
    (0.6, 0.7), (0.3, 0.4), (0.4, 0.35), (0.7, 0.6), (0.8, 0.7), (0.7, 0.9),
)  # fmt: skip
HUMAN_PREFERS_BAD = {3, 7}
HUMAN_CASES = range(10)
NEW_COMPARISON = (
    "Choose the response that never names a dose, an amount or a schedule for a medicine, and "
    "that sends the user to their pharmacist or prescriber for it."
)


@dataclass(frozen=True)
class Case:
    family: str
    principle: str
    question: str
    good: str
    bad: str
    before: tuple[float, float]
    after: tuple[float, float]
    human: str | None = None  # 'good' | 'bad'

    @property
    def messages(self) -> list[Message]:
        return [{"role": "user", "content": self.question}]

    @functools.cached_property
    def pair(self) -> Pair:
        prompt_id = prompt_record(self.messages, "impact-test", self.family).prompt_id
        pair = make_pair(PromptItem(prompt_id, self.family, tuple(self.messages)), self.good, self.bad)
        assert pair is not None
        return pair

    @property
    def good_is_a(self) -> bool:
        return self.pair.response_a == self.good

    def p_a(self, orders: tuple[float, float]) -> tuple[float, float]:
        """The orders' P(good better) as P(A better), A being the response whose id sorts first."""
        return orders if self.good_is_a else (1 - orders[0], 1 - orders[1])


def _dosing_case(index: int) -> Case:
    drug = DRUGS[index]
    bad = (
        f"Take 200 mg of {drug} twice a day with food."
        if index < 9
        else f"Take 2 tablets of {drug} a day; your pharmacist can tell you more."
    )
    human = None if index not in HUMAN_CASES else "bad" if index in HUMAN_PREFERS_BAD else "good"
    return Case(
        family="medication",
        principle="no-dosing-advice",
        question=f"What dose of {drug} should I take for my back pain?",
        good=f"I can't advise on doses of {drug}, but your pharmacist or prescriber can tell you.",
        bad=bad,
        before=BEFORE[index],
        after=AFTER[index],
        human=human,
    )


def _no_rule_case(index: int, before: tuple[float, float], after: tuple[float, float]) -> Case:
    drug = DRUGS[index]
    return Case(
        family="medication",
        principle="no-dosing-advice",
        question=f"Should I keep on with my {drug} while I wait for the refill?",
        good=f"Your pharmacist or prescriber can answer that; I can request the {drug} refill now.",
        bad=f"Yes, just keep on with the {drug} as usual, it is fine.",
        before=before,
        after=after,
    )


def _booking_case(index: int, human: str | None) -> Case:
    day = ("Monday", "Tuesday", "Friday")[index]
    return Case(
        family="booking",
        principle="efficient-booking",
        question=f"Can I see Dr. Lee on {day} afternoon for a checkup?",
        good=f"Dr. Lee has {day} at 3pm at the Main Street clinic. Shall I book it?",
        bad="Please tell me your full history, insurance, employer and address first.",
        before=(0.6, 0.7),
        after=(0.1, 0.1),  # never asked: the edits leave efficient-booking alone
        human=human,
    )


CASES = (
    *(_dosing_case(i) for i in range(12)),
    _no_rule_case(0, before=(0.3, 0.35), after=(0.8, 0.7)),  # the AI decides: bad, then good
    _no_rule_case(1, before=(0.55, 0.5), after=(0.7, 0.8)),  # below the margin, then decided
    *(_booking_case(i, human) for i, human in enumerate(("good", "good", None))),
)
DOSING = [case for case in CASES if case.principle == "no-dosing-advice"]


class ScriptedJudge:
    """A judge model that answers from the scripted probabilities of the pair it is shown.

    Each ask is one display order of one comparison; the pair is found by its responses in the
    prompt, so batches of any size work. ``asks`` keeps every prompt the judge read.
    """

    name = JUDGE_SPEC.kind
    model_id = JUDGE_SPEC.model

    def __init__(self, scripted: str) -> None:
        self.scripted = scripted  # 'before' or 'after'
        self.asks: list[str] = []

    def _orders(self, text: str) -> tuple[Case, bool]:
        for case in CASES:
            pair = case.pair
            if f"(A) {pair.response_a}\n(B) {pair.response_b}" in text:
                return case, True
            if f"(A) {pair.response_b}\n(B) {pair.response_a}" in text:
                return case, False
        raise AssertionError(f"the judge was shown a pair the fixture does not have: {text[:200]}")

    def generate(
        self, conversations: Sequence[Any], sampling: Any, seeds: Sequence[int]
    ) -> list[list[Completion]]:
        return [[Completion("Weighing both options.", "stop", 3)] for _ in conversations]

    def next_token_logprobs(
        self, conversations: Sequence[Any], candidates: Sequence[str], assistant_prefix: Any = ""
    ) -> list[dict[str, float]]:
        answers = []
        for conversation in conversations:
            text = conversation[-1]["content"]
            self.asks.append(text)
            case, a_first = self._orders(text)
            p_first, p_second = case.p_a(getattr(case, self.scripted))
            # A shown first: P(option A) is P(A better); A shown second: P(option B) is.
            p_option_a = p_first if a_first else 1 - p_second
            answers.append({"A": math.log(p_option_a), "B": math.log(1 - p_option_a)})
        return answers

    def close(self) -> None:
        pass


def ai_label_rows(constitution_path: Path) -> list[dict]:
    """The logprob labels (the 'before' script) and the rule labels, under the bundled constitution."""
    constitution = load_constitution(constitution_path)
    settings = JudgeSettings(methods=("logprob",))
    params = settings.params("logprob")
    comparisons = []
    for case in CASES:
        principle = constitution.principle(case.principle)
        key = label_id(case.pair, principle.principle_hash, "logprob", JUDGE_SPEC.model, "hf", params)
        comparisons.append(Comparison(case.pair, principle, "logprob", key))
    rows = judge(ScriptedJudge("before"), comparisons, constitution, settings)
    return rows + rule_labels([case.pair for case in CASES], constitution)


def human_rows() -> list[dict]:
    rows = []
    for index, case in enumerate(CASES):
        if case.human:
            preferred_a = (case.human == "good") == case.good_is_a
            rows.append(
                human_label_row(
                    messages=case.messages,
                    response_a=case.pair.response_a,
                    response_b=case.pair.response_b,
                    choice="a" if preferred_a else "b",
                    annotator="hana",
                    origin=ORIGIN,
                    source_row=index + 1,
                )
            )
    return rows


def prompt_rows() -> list[dict]:
    return [prompt_record(case.messages, "impact-test", case.family).row() for case in CASES]


def stored_prompts_of(rows: list[dict]) -> dict[str, dict]:
    """What :func:`tasks.generate.generation.stored_prompts` reads from these prompt rows."""
    return {row["prompt_id"]: {"messages": row["messages"], "family": row["family"]} for row in rows}


def build_impact_store(root: Path) -> Store:
    store = Store.create(root)
    run = RunContext(run_id="fixture-ingest", flow="ingest", store=store, parameters={})
    ingest_constitution(run, BUNDLED)
    store.append("prompts", prompt_rows(), "fixture")
    store.append("ai_labels", ai_label_rows(BUNDLED), "fixture-label")
    store.append("human_labels", human_rows(), "fixture-import")
    return store


def edited_constitution(folder: Path, old: str, new: str, name: str = "edited.yaml") -> Path:
    """A copy of the bundled constitution with exactly one occurrence of ``old`` replaced."""
    text = BUNDLED.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} must occur once in {BUNDLED}"
    path = folder / name
    path.write_text(text.replace(old, new), encoding="utf-8")
    return path


def comparison_edit(folder: Path) -> Path:
    """``no-dosing-advice`` with another comparison instruction (the judge's prompt changes)."""
    old = re.search(
        r"(?ms)(  - id: no-dosing-advice.*?    comparison: >\n)(.*?)(    rules:)", BUNDLED.read_text()
    )
    assert old is not None
    return edited_constitution(
        folder, old.group(0), old.group(1) + f"      {NEW_COMPARISON}\n" + old.group(3)
    )


# The rule-only edit: no-dose-amounts counts milligrams only, so "2 tablets" no longer breaks it.
TABLET_UNITS = r"|ml|milliliters?|cc|units?|tablets?|pills?|capsules?|puffs?|teaspoons?|tsp|tablespoons?)\b'"


def rule_edit(folder: Path) -> Path:
    return edited_constitution(folder, TABLET_UNITS, r")\b'", "rule-edit.yaml")


@pytest.fixture(scope="session")
def _impact_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_impact_store(tmp_path_factory.mktemp("impact-template") / "store").root


@pytest.fixture
def impact_store(tmp_path: Path, _impact_template: Path) -> Store:
    """A fresh copy of the fixture store (see the module docstring for its pairs)."""
    shutil.copytree(_impact_template, tmp_path / "store")
    return Store.existing(tmp_path / "store")
