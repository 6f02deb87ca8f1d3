"""The AI judge: compare two responses under a sampled principle, in both orders, as soft labels.

Three methods, all writing ``ai_labels`` rows:

* ``logprob`` (the default, after Constitutional AI): the judge model reads the conversation,
  one principle's comparison instruction and options (A)/(B), and charter reads the
  next-token log-probabilities of "A" and "B" after "The answer is: (": one forward pass
  per order and no generated text. Both orders are judged; the label is their mean.
* ``cot``: the judge first writes a short reasoning (greedy), then the option
  log-probabilities are read after it. Such probabilities sit near 0 or 1, so the label is
  clamped into a band (0.4-0.6 by default, as the CAI paper did).
* ``rule``: principles with machine-checkable rules label a pair with certainty when exactly
  one response breaks a rule (:mod:`tasks.constitution.rules`), recording the rule.

Principles are sampled per pair (seeded, among those with a comparison instruction whose
tags admit the prompt's family); ``principles_per_pair`` > 1 gives an ensemble of labels.
A label's id hashes the pair, the principle's own hash, the method, the judge model and
backend and the method's settings (template included), so a rerun judges only what is missing.
"""

from __future__ import annotations

import json
import random
import string
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tasks.backends.base import Backend, SamplingSettings
from tasks.constitution.model import Constitution, Principle
from tasks.constitution.rules import decisive_rules
from tasks.core.conversation import Message, orientation_free_vote, render_turns
from tasks.core.errors import CharterError, InputError, Problem, read_input_text
from tasks.core.hashing import content_id
from tasks.label.pairs import Pair
from tasks.label.soft_labels import clamp, order_average, orders_agree, p_a_from_orders, preference

Method = Literal["logprob", "cot", "rule"]
METHODS: tuple[Method, ...] = get_args(Method)
PLACEHOLDERS = ("conversation", "principle", "response_a", "response_b")
OPTIONS = ("A", "B")
ANSWER_PREFIX = "The answer is: ("
COT_REQUEST = "\n\nFirst explain briefly which option is better under the principle, then answer (A) or (B)."
COT_ANSWER = "\nSo the answer is: ("
RULE_JUDGE = "rules"

DEFAULT_TEMPLATE = """Consider the following conversation between a human and an assistant:

{conversation}

{principle}

Options:
(A) {response_a}
(B) {response_b}"""


def template_problems(text: str, source: str) -> list[Problem]:
    """What is wrong with a judge prompt template: missing or unknown ``{placeholders}``, bad braces."""
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
    except ValueError as exc:
        return [Problem(source, f"not a valid template: {exc} (write a literal brace as {{{{ or }}}})")]
    problems = [
        Problem(source, f"the template is missing the placeholder {{{name}}}", field=name)
        for name in PLACEHOLDERS
        if name not in names
    ]
    allowed = ", ".join("{" + p + "}" for p in PLACEHOLDERS)
    for name in sorted(names - set(PLACEHOLDERS)):
        line = text.count("\n", 0, max(text.find("{" + name), 0)) + 1
        problems.append(Problem(source, f"unknown placeholder {{{name}}}; allowed: {allowed}", line, name))
    return problems


def load_template(path: str | Path) -> str:
    """A judge prompt template file, checked; raises :class:`InputError` naming the file and placeholder."""
    text = read_input_text(path)
    problems = template_problems(text, str(path))
    if problems:
        raise InputError(problems)
    return text


class JudgeSettings(BaseModel):
    """A label run's judge settings as plain data (a flow parameter)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    methods: tuple[Method, ...] = Field(
        default=("logprob", "rule"),
        description="logprob, cot or rule (repeatable; default logprob and rule).",
    )
    principles_per_pair: int = Field(
        default=1, ge=1, description="Principles sampled per pair (more than 1: an ensemble of labels)."
    )
    seed: int = Field(default=0, description="Seeds the principle draw per pair.")
    template_path: str | None = Field(
        default=None,
        description="Judge prompt template with {conversation} {principle} {response_a} {response_b}.",
    )
    cot_tokens: int = Field(default=64, ge=1, description="Reasoning tokens for the cot method.")
    cot_clamp: tuple[float, float] = Field(
        default=(0.4, 0.6), description="Band the cot method's soft label is clamped into."
    )

    # Field validators, not one model validator: a problem is then reported at its own key's line.
    @field_validator("methods")
    @classmethod
    def _each_method_once(cls, methods: tuple[Method, ...]) -> tuple[Method, ...]:
        if not methods or len(set(methods)) != len(methods):
            raise ValueError("methods must name each of logprob, cot, rule at most once, and at least one")
        return methods

    @field_validator("cot_clamp")
    @classmethod
    def _band_around_half(cls, band: tuple[float, float]) -> tuple[float, float]:
        low, high = band
        if low >= high:
            raise ValueError(
                f"cot_clamp must be [low, high] with low below high, e.g. [0.4, 0.6] (got {list(band)})"
            )
        clamp(0.5, low, high)  # raises on a band that cannot hold an undecided label
        return band

    def template(self) -> str:
        return load_template(self.template_path) if self.template_path else DEFAULT_TEMPLATE

    def params(self, method: Method) -> dict[str, Any]:
        """The settings that shape a label of ``method``: part of its id and stored with it."""
        if method == "rule":
            return {}
        params: dict[str, Any] = {"template": content_id("judge_template", self.template())}
        if method == "cot":
            params |= {"cot_tokens": self.cot_tokens, "clamp": list(self.cot_clamp)}
        return params


def judge_principles(constitution: Constitution, family: str | None) -> list[Principle]:
    """Principles a judge can read for ``family``: those with a comparison instruction, in id order."""
    usable = [p for p in constitution.principles if p.comparison and p.applies_to(family)]
    return sorted(usable, key=lambda p: p.id)


def sample_principles(constitution: Constitution, pair: Pair, count: int, seed: int) -> list[Principle]:
    """``count`` distinct principles for one pair (fewer if fewer apply), drawn from a per-pair seed."""
    candidates = judge_principles(constitution, pair.prompt.family)
    if not candidates:
        raise CharterError(
            f"constitution {constitution.name} has no principle with a comparison instruction "
            f"for prompt family {pair.prompt.family!r}"
        )
    draw = random.Random(int(content_id("judge_draw", {"seed": seed, "pair": pair.pair_id})[:15], 16))
    return sorted(draw.sample(candidates, min(count, len(candidates))), key=lambda p: p.id)


@dataclass(frozen=True)
class Comparison:
    """One judge call's worth of work: a pair under a principle by a model method, and its label id."""

    pair: Pair
    principle: Principle
    method: Method
    label_id: str


def label_id(pair: Pair, principle_hash: str, method: str, model: str, backend: str, params: dict) -> str:
    return content_id(
        "ai_label",
        {
            "pair_id": pair.pair_id,
            "response_a_id": pair.response_a_id,
            "principle": principle_hash,
            "method": method,
            "model": model,
            "backend": backend,
            "params": params,
        },
    )


def plan_comparisons(
    pairs: Sequence[Pair], constitution: Constitution, settings: JudgeSettings, model: str, backend: str
) -> list[Comparison]:
    """The model-judged labels (logprob, cot) a run needs, in pair order; rules are not here."""
    # Each method's params read and hash the template file: once per run, not once per pair.
    params = {m: settings.params(m) for m in settings.methods if m != "rule"}
    comparisons = []
    for pair in pairs:
        principles = sample_principles(constitution, pair, settings.principles_per_pair, settings.seed)
        for principle in principles:
            for method, method_params in params.items():
                key = label_id(pair, principle.principle_hash, method, model, backend, method_params)
                comparisons.append(Comparison(pair, principle, method, key))
    return comparisons


def judge_messages(
    template: str, pair: Pair, principle: Principle, a_shown_first: bool, cot: bool
) -> list[Message]:
    first, second = (
        (pair.response_a, pair.response_b) if a_shown_first else (pair.response_b, pair.response_a)
    )
    text = template.format(
        conversation=render_turns(pair.prompt.messages),
        principle=principle.comparison,
        response_a=first,
        response_b=second,
    )
    return [{"role": "user", "content": text + (COT_REQUEST if cot else "")}]


def _label_row(
    comparison_id: str,
    pair: Pair,
    p_a: float,
    *,
    method: str,
    judge_model: str,
    judge_backend: str,
    constitution_id: str,
    principle: Principle,
    params: dict[str, Any],
    p_a_first: float | None,
    p_a_second: float | None,
    rule_id: str | None = None,
    rationale: str | None = None,
) -> dict[str, Any]:
    choice = preference(p_a)
    preferred = {"a": pair.response_a_id, "b": pair.response_b_id, "tie": None}[choice]
    return {
        "label_id": comparison_id,
        "pair_id": pair.pair_id,
        "prompt_id": pair.prompt.prompt_id,
        "response_a_id": pair.response_a_id,
        "response_b_id": pair.response_b_id,
        "response_a": pair.response_a,
        "response_b": pair.response_b,
        "choice": choice,
        "preferred_id": preferred,
        "vote": orientation_free_vote(preferred, pair.response_a_id, pair.response_b_id),
        "judge_model": judge_model,
        "method": method,
        "principle_id": principle.id,
        "constitution_id": constitution_id,
        "p_a_first": p_a_first,
        "p_a_second": p_a_second,
        "p_a": p_a,
        "orders_agree": None
        if p_a_first is None or p_a_second is None
        else orders_agree(p_a_first, p_a_second),
        "rule_id": rule_id,
        "rationale": rationale,
        "principle_hash": principle.principle_hash,
        "judge_backend": judge_backend,
        "params": json.dumps(params, sort_keys=True),
    }


def judge(
    backend: Backend, comparisons: Sequence[Comparison], constitution: Constitution, settings: JudgeSettings
) -> list[dict[str, Any]]:
    """Judge every comparison in both orders with the backend; one ``ai_labels`` row each."""
    template = settings.template()
    rows = []
    for method in ("logprob", "cot"):
        batch = [c for c in comparisons if c.method == method]
        if not batch:
            continue
        params = settings.params(method)
        # Every comparison's first order, then every second order: a prompt's two orders share
        # the conversation and principle, and vLLM's prefix cache reuses them only once the
        # first has been computed, that is in a later engine step.
        asks = [
            judge_messages(template, c.pair, c.principle, a_first, cot=method == "cot")
            for a_first in (True, False)
            for c in batch
        ]
        rationales: list[str] | None = None
        if method == "cot":
            rationales = _reasonings(backend, asks, settings.cot_tokens, [c.label_id for c in batch])
            prefixes = [reasoning + COT_ANSWER for reasoning in rationales]
        else:
            prefixes = [ANSWER_PREFIX] * len(asks)
        logprobs = backend.next_token_logprobs(asks, OPTIONS, prefixes)
        count = len(batch)
        for index, comparison in enumerate(batch):
            p_a_first, p_a_second = p_a_from_orders(logprobs[index], logprobs[count + index], OPTIONS)
            p_a = order_average(p_a_first, p_a_second)
            rationale = None
            if rationales is not None:
                p_a = clamp(p_a, *settings.cot_clamp)
                rationale = f"A shown first: {rationales[index]}\nA shown second: {rationales[count + index]}"
            rows.append(
                _label_row(
                    comparison.label_id,
                    comparison.pair,
                    p_a,
                    method=method,
                    judge_model=backend.model_id,
                    judge_backend=backend.name,
                    constitution_id=constitution.constitution_id,
                    principle=comparison.principle,
                    params=params,
                    p_a_first=p_a_first,
                    p_a_second=p_a_second,
                    rationale=rationale,
                )
            )
    return rows


def _reasonings(backend: Backend, asks: list[list[Message]], max_tokens: int, keys: list[str]) -> list[str]:
    """The judge's short greedy reasoning for each ask (every comparison's first order, then its second)."""
    sampling = SamplingSettings(n=1, temperature=0.0, top_p=1.0, max_tokens=max_tokens)
    seeds = [int(key[:15], 16) + order for order in (0, 1) for key in keys]
    return [completions[0].text.strip() for completions in backend.generate(asks, sampling, seeds)]


def rule_labels(pairs: Sequence[Pair], constitution: Constitution) -> list[dict[str, Any]]:
    """A certain label for every pair and rule that exactly one of its responses breaks."""
    rows = []
    for pair in pairs:
        verdicts = decisive_rules(
            constitution, pair.prompt.family, pair.prompt.messages, pair.response_a, pair.response_b
        )
        for verdict in verdicts:
            principle, rule = verdict.applied.principle, verdict.applied.rule
            p_a = 1.0 if verdict.a_better else 0.0
            key = label_id(pair, principle.principle_hash, f"rule:{rule.id}", RULE_JUDGE, RULE_JUDGE, {})
            rows.append(
                _label_row(
                    key,
                    pair,
                    p_a,
                    method="rule",
                    judge_model=RULE_JUDGE,
                    judge_backend=RULE_JUDGE,
                    constitution_id=constitution.constitution_id,
                    principle=principle,
                    params={},
                    p_a_first=p_a,
                    p_a_second=p_a,
                    rule_id=rule.id,
                    rationale=verdict.reason,
                )
            )
    return rows
