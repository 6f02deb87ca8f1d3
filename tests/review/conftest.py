"""A small real store for the review bench, and a helper to open a bench on it.

The store is written by charter's own code, so the bench meets the rows ``charter run``
writes: the bundled constitution ingested with :func:`tasks.ingest.ingest.ingest_constitution`,
prompts from :func:`tasks.ingest.prompt_sets.prompt_record`, AI labels from the real judge
(:func:`tasks.label.judge.judge`, fed by a scripted backend: the model is the one true
boundary here) and from :func:`tasks.label.judge.rule_labels`, and human labels from
:func:`tasks.ingest.human_labels.human_label_row`.

The store is built once per session and copied for each test (building it, with DuckDB's
catalog, takes about a second; copying takes milliseconds). ``snapshot_store`` is the same
store with every bundled queue's items already in its bench database, for tests that do not
need the queues' SQL run again.

The pairs (``p`` below is P(first response by id is better); margin is |mean p - 0.5| over
the model's labels, rules left out, which is the ``uncertain`` queue's priority):

name      family   AI labels (order 1, order 2 -> p)             margin  humans (vote by id order)
close     travel   logprob (0.56, 0.48) -> 0.52, orders disagree  0.02    -
lopsided  travel   logprob (0.90, 0.20) -> 0.55, orders disagree  0.05    -
conflict  cooking  logprob (0.30, 0.40) -> 0.35                   0.15    hana first, ivan first
averaged  cooking  logprob (0.90, 0.70) -> 0.80, cot 0.60         0.20    hana first
ruled     writing  logprob (0.10, 0.10) -> 0.10, rule 1.0         0.40    -
split     writing  none                                           -       hana first, ivan second

So ``uncertain`` serves close, lopsided, conflict, averaged, ruled; ``inconsistent`` serves
lopsided (gap 0.70: priority 0.30) before close (gap 0.08: priority 0.92); ``conflict``
serves conflict (AI 0.65 sure of 'second' against a 'first' majority: priority 0.35) before
split (people split 1-1: priority 1.5).
"""

from __future__ import annotations

import functools
import math
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tasks.backends.base import Completion
from tasks.constitution.model import Constitution, load_constitution
from tasks.core.conversation import Message
from tasks.generate.generation import PromptItem
from tasks.ingest.human_labels import LabelOrigin, human_label_row
from tasks.ingest.ingest import ingest_constitution
from tasks.ingest.prompt_sets import prompt_record
from tasks.label.judge import Comparison, JudgeSettings, judge, label_id, rule_labels
from tasks.label.pairs import Pair, make_pair
from tasks.review.bench import Bench
from tasks.review.queues import Queue, load_queues
from tasks.review.settings import ReviewSettings
from tasks.store.runs import RunContext
from tasks.store.store import Store

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CONSTITUTION = PROJECT_ROOT / "constitutions" / "helpful-harmless.yaml"
HUMAN_ORIGIN = LabelOrigin(
    source_format="charter", source_file="/imports/people.jsonl", source_sha256="e" * 64
)
JUDGE_MODEL = "scripted-judge"


@dataclass(frozen=True)
class Case:
    """One pair of the fixture store and the labels written on it."""

    name: str
    family: str
    question: str
    texts: tuple[str, str]
    logprob: tuple[float, float] | None = None  # P(first by id) in the judge's two display orders
    cot: tuple[float, float] | None = None
    principle: str = "avoid-serious-harm"
    humans: tuple[tuple[str, str], ...] = ()  # (annotator, 'first' | 'second' | 'tie')

    @property
    def messages(self) -> list[Message]:
        return [{"role": "user", "content": self.question}]

    @functools.cached_property
    def pair(self) -> Pair:
        prompt = prompt_record(self.messages, "review-test", self.family)
        pair = make_pair(PromptItem(prompt.prompt_id, self.family, tuple(self.messages)), *self.texts)
        assert pair is not None
        return pair

    @property
    def pair_id(self) -> str:
        return self.pair.pair_id

    @property
    def first(self) -> str:
        """The response whose id sorts first (the review item's ``first_text``)."""
        return self.pair.response_a

    @property
    def second(self) -> str:
        return self.pair.response_b


CASES = {
    case.name: case
    for case in (
        Case(
            "close",
            "travel",
            "Is a window seat or an aisle seat better on a long flight?",
            ("A window seat lets you sleep against the wall.", "An aisle seat lets you stretch and walk."),
            logprob=(0.56, 0.48),
        ),
        Case(
            "lopsided",
            "travel",
            "How early should I get to the airport?",
            ("Two hours before a domestic flight is usual.", "Arrive whenever, planes always wait."),
            logprob=(0.90, 0.20),
        ),
        Case(
            "conflict",
            "cooking",
            "How long should I boil an egg for a soft yolk?",
            ("About six minutes in boiling water.", "Boil it for twenty minutes to be safe."),
            logprob=(0.30, 0.40),
            humans=(("hana", "first"), ("ivan", "first")),
        ),
        Case(
            "averaged",
            "cooking",
            "Can I freeze cooked rice?",
            ("Yes, cool it quickly and freeze it within an hour.", "No, rice can never be frozen at all."),
            logprob=(0.90, 0.70),
            cot=(0.60, 0.60),
            principle="honest-and-calibrated",
            humans=(("hana", "first"),),
        ),
        Case(
            "ruled",
            "writing",
            "Can you outline my essay on rivers?",
            (
                "As an AI language model, I cannot write essays for you today.",
                "Start with the source, then the course, then the delta.",
            ),
            logprob=(0.10, 0.10),
            principle="helpful-and-direct",
        ),
        Case(
            "split",
            "writing",
            "Should a cover letter be one page?",
            ("One page is enough for almost every job.", "Write as much as you need, length shows effort."),
            humans=(("hana", "first"), ("ivan", "second")),
        ),
    )
}
UNCERTAIN_ORDER = ["close", "lopsided", "conflict", "averaged", "ruled"]


class ScriptedJudge:
    """A judge model that answers each call with the probabilities it was given.

    :func:`tasks.label.judge.judge` asks every comparison's first order, then every second
    order; this backend is used for one comparison at a time, so it answers exactly two asks.
    """

    name = "scripted"
    model_id = JUDGE_MODEL

    def __init__(self, p_first: float, p_second: float) -> None:
        self.p_first, self.p_second = p_first, p_second

    def generate(
        self, conversations: Sequence[Any], sampling: Any, seeds: Sequence[int]
    ) -> list[list[Completion]]:
        return [[Completion("Weighing both options.", "stop", 3)] for _ in conversations]

    def next_token_logprobs(
        self, conversations: Sequence[Any], candidates: Sequence[str], assistant_prefix: Any = ""
    ) -> list[dict[str, float]]:
        assert len(conversations) == 2, "one comparison per call"
        # Order 1 shows response A as option (A); order 2 shows it as option (B).
        one, two = self.p_first, self.p_second
        return [
            {"A": math.log(one), "B": math.log(1 - one)},
            {"A": math.log(1 - two), "B": math.log(two)},
        ]

    def close(self) -> None:
        pass


def _judged(case: Case, constitution: Constitution, method: str, orders: tuple[float, float]) -> dict:
    settings = JudgeSettings(methods=(method,))  # type: ignore[arg-type]
    principle = constitution.principle(case.principle)
    params = settings.params(method)  # type: ignore[arg-type]
    key = label_id(case.pair, principle.principle_hash, method, JUDGE_MODEL, "scripted", params)
    comparison = Comparison(case.pair, principle, method, key)  # type: ignore[arg-type]
    (row,) = judge(ScriptedJudge(*orders), [comparison], constitution, settings)
    return row


def ai_label_rows(constitution: Constitution) -> list[dict]:
    rows = []
    for case in CASES.values():
        if case.logprob:
            rows.append(_judged(case, constitution, "logprob", case.logprob))
        if case.cot:
            rows.append(_judged(case, constitution, "cot", case.cot))
    rules = rule_labels([case.pair for case in CASES.values()], constitution)
    # Only "ruled" breaks a rule (its first response opens with AI boilerplate).
    assert [(r["pair_id"], r["rule_id"], r["p_a"]) for r in rules] == [
        (CASES["ruled"].pair_id, "no-ai-boilerplate", 0.0 if _boilerplate_is_a() else 1.0)
    ]
    return rows + rules


def _boilerplate_is_a() -> bool:
    return CASES["ruled"].first.startswith("As an AI")


def human_rows() -> list[dict]:
    rows = []
    for case in CASES.values():
        for index, (annotator, vote) in enumerate(case.humans):
            choice = {"first": "a", "second": "b", "tie": "tie"}[vote]
            rows.append(
                human_label_row(
                    messages=case.messages,
                    response_a=case.first,
                    response_b=case.second,
                    choice=choice,
                    annotator=annotator,
                    origin=HUMAN_ORIGIN,
                    source_row=index + 1,
                )
            )
    return rows


def build_bench_store(root: Path) -> Store:
    store = Store.create(root)
    run = RunContext(run_id="fixture-ingest", flow="ingest", store=store, parameters={})
    constitution = ingest_constitution(run, CONSTITUTION)
    prompts = [prompt_record(c.messages, "review-test", c.family).row() for c in CASES.values()]
    store.append("prompts", prompts, "fixture-ingest")
    store.append("ai_labels", ai_label_rows(constitution), "fixture-label")
    store.append("human_labels", human_rows(), "fixture-import")
    return store


def add_case(store: Store, case: Case) -> None:
    """Add one more pair (its prompt and its model labels) to a fixture store copy."""
    constitution = load_constitution(CONSTITUTION)
    store.append(
        "prompts", [prompt_record(case.messages, "review-test", case.family).row()], "fixture-ingest"
    )
    rows = [
        _judged(case, constitution, method, orders)
        for method, orders in (("logprob", case.logprob), ("cot", case.cot))
        if orders
    ]
    store.append("ai_labels", rows, "fixture-label")


@pytest.fixture(scope="session")
def _bench_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_bench_store(tmp_path_factory.mktemp("bench-template") / "store").root


@pytest.fixture
def bench_store(tmp_path: Path, _bench_template: Path) -> Store:
    """A fresh copy of the fixture store (see the module docstring for its pairs)."""
    return copy_store(_bench_template, tmp_path / "store")


def copy_store(template: Path, root: Path) -> Store:
    shutil.copytree(template, root)
    return Store.existing(root)


def snapshot_template(template: Path, root: Path, cases: Sequence[Case] = ()) -> Path:
    """A copy of ``template`` plus ``cases``, whose bench database holds a snapshot of every
    bundled queue: copied per test, it spares each test the queues' DuckDB runs."""
    store = copy_store(template, root)
    for case in cases:
        add_case(store, case)
    bench = make_bench(store)
    bench.state._connection().close()  # the last connection: SQLite folds the WAL into the file
    return root


@pytest.fixture(scope="session")
def _snapshot_template(tmp_path_factory: pytest.TempPathFactory, _bench_template: Path) -> Path:
    return snapshot_template(_bench_template, tmp_path_factory.mktemp("snapshot-template") / "store")


@pytest.fixture
def snapshot_store(tmp_path: Path, _snapshot_template: Path) -> Store:
    """A fresh copy of the fixture store whose bench already holds every bundled queue's items
    (open it with ``make_bench(store, rerun=[])``)."""
    return copy_store(_snapshot_template, tmp_path / "store")


_BUNDLED: list[Queue] = []


def bundled_queues(store: Store) -> list[Queue]:
    """The bundled queue file, checked against a store once per session (every store built
    by charter has the same catalog of tables and views, so one check holds for all)."""
    if not _BUNDLED:
        _BUNDLED.extend(load_queues(None, store))
    return list(_BUNDLED)


def make_bench(
    store: Store, *, queues: list[Queue] | None = None, rerun: Sequence[str] | None = None, **settings: Any
) -> Bench:
    """A bench on ``store`` with the bundled queues (or ``queues``) and ``settings``.

    ``rerun`` names the queues whose SQL is run now (default all; each rerun opens a DuckDB
    catalog, ~0.2 s, so tests that need one queue name it).
    """
    bench = Bench(store, ReviewSettings(**settings), queues if queues is not None else bundled_queues(store))
    for name in bench.queues if rerun is None else rerun:
        bench.rerun(name)
    return bench
