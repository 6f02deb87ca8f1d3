"""Benchmark: the log-prob AI judge against a generate-then-parse judge, on real hh-rlhf pairs.

One run, on one backend (vLLM by default, ``--backend hf`` for transformers) and one loaded model
(the embedded SmolLM2-135M-Instruct, ``resolve_model(None)``), judges the same N pairs (default 64)
twice and compares the two judges' speed and verdicts.

The pairs: the first N usable rows of ``../shared/data/hh-rlhf/harmless-base-test-sample.jsonl``,
read by charter's own hh-rlhf importer (``tasks.ingest.human_labels.parse_label_file``): the conversation is
every turn before the last Assistant turn, the two responses are the two last Assistant turns, and
the human choice is the ``chosen`` one. Pairs are canonicalised by ``tasks.label.pairs.make_pair`` (A is
the response whose id sorts first, so A is the chosen response only about half the time; accuracy
compares response ids); rows the importer rejects or whose responses are the same text are skipped
and counted. Each pair gets one principle of ``constitutions/helpful-harmless.yaml``, sampled by
``tasks.label.judge.plan_comparisons`` (seed 0); both judges see the same principle.

The two judges, each judging every pair in both orders (A shown first, then A shown second):

* ``logprob``: ``tasks.label.judge.judge`` with ``JudgeSettings(methods=("logprob",))``, exactly as a
  label run calls it: per order one forward pass reading the log-probabilities of "A" and "B" after
  "The answer is: (", no generated text; p_a is the mean of the two orders' P(A better);
* ``parse`` (the baseline, as distilabel- and TRL-style judges do it): the same judge prompt
  (``judge_messages`` with ``cot=False``) plus the request "Reply with your verdict as 'Verdict:
  (A)' or 'Verdict: (B)', then one sentence giving the reason.", answered greedily (n=1,
  temperature 0, up to ``--parse-tokens`` new tokens, default 48) in one ``Backend.generate`` call.
  The verdict is the letter after "Verdict" ("(A)", "A", "(B)" or "B"), else the first standalone
  "(A)" or "(B)" in the text; a text with neither is a parse failure, counted and reported, and
  that order counts as undecided. Each order gives 1, 0.5 or 0 for A; p_a is their mean.

Timing: each judge first judges the first 2 pairs once, untimed (first-call initialisation), then
all N pairs in one timed call: the figure is the wall time of that call, prompt building and parsing
included; model load / engine start is timed on its own and never counted. A comparison is one pair
judged in both orders, so comparisons/s = N / seconds. vLLM caches prompt prefixes across calls and
the two judges' prompts differ only in their last few tokens, so the cache is emptied before each
timed call: otherwise the second judge would reuse the first one's prefill (and each timed call its
warm-up's). Prefixes shared within one call (the two orders of a pair: both judges send every first
order, then every second) are reused as the backend normally does, for both judges alike. The
logprob judge runs first, then the parse judge.

Verdicts: a pair is decisive for a judge when its p_a is not exactly 0.5 (the logprob judge is
practically always decisive; the parse judge is not when its two orders disagree or fail). Reported
per judge: accuracy against the human choice on its decisive pairs, how often its two orders prefer
the same response, and how often it picks whichever response is shown first (position bias); then
how often the two judges agree on the pairs decisive for both. ``VLLM_LOGGING_LEVEL`` defaults to
WARNING here, only to keep the report readable; the 1-minute load average is printed before and
after, because on a 2-core machine anything else running skews every figure.

The prefill limit (vLLM only, ``judge_prefill``): after both judges, the engine reads the logprob
judge's prompts once more with no cache read and no judging; the judge's pairs/s over
prefill tokens/s / prompt tokens per pair says how close the judge runs to the engine's own
prefill, and the judge's timed call reports how many prompt tokens the prefix cache served.

Targets (reported as PASS/MISS, never asserted): the logprob judge >= 10x the parse judge in
comparisons/s, and >= 0.8 of the prefill limit.

Run from the project root::

    .venv/bin/python bench/judge.py                        # 64 pairs on vLLM (a few minutes)
    .venv/bin/python bench/judge.py --pairs 8 --backend hf # a quick run on transformers
    .venv/bin/python bench/judge.py --parse-tokens 16      # a shorter generated verdict
    .venv/bin/python bench/judge.py --block-size 32        # finer prefix-cache blocks
    .venv/bin/python bench/judge.py --json judge.json      # also write the figures as JSON
"""

from __future__ import annotations

import argparse
import gc
import os
import re
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

# bench/machine.py and bench/judge_prefill.py: this script's folder is on sys.path
from judge_prefill import judge_prompt_ids, prefill_figures, print_prefill, recording_cache_hits
from machine import environment, write_figures

try:
    from tasks.backends.base import Backend, SamplingSettings
    from tasks.backends.chat import prompt_token_ids
    from tasks.backends.models import ResolvedModel, resolve_model
    from tasks.constitution.model import Constitution, load_constitution
    from tasks.core.conversation import Message
    from tasks.generate.generation import PromptItem
    from tasks.ingest.human_labels import parse_label_file
    from tasks.label.judge import (
        ANSWER_PREFIX,
        Comparison,
        JudgeSettings,
        judge,
        judge_messages,
        plan_comparisons,
    )
    from tasks.label.pairs import Pair, make_pair
    from tasks.label.soft_labels import order_average, preference
except ImportError:  # not installed: run from a checkout
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tasks.backends.base import Backend, SamplingSettings
    from tasks.backends.chat import prompt_token_ids
    from tasks.backends.models import ResolvedModel, resolve_model
    from tasks.constitution.model import Constitution, load_constitution
    from tasks.core.conversation import Message
    from tasks.generate.generation import PromptItem
    from tasks.ingest.human_labels import parse_label_file
    from tasks.label.judge import (
        ANSWER_PREFIX,
        Comparison,
        JudgeSettings,
        judge,
        judge_messages,
        plan_comparisons,
    )
    from tasks.label.pairs import Pair, make_pair
    from tasks.label.soft_labels import order_average, preference

T = TypeVar("T")

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "hh-rlhf" / "harmless-base-test-sample.jsonl"
CONSTITUTION = ROOT / "constitutions" / "helpful-harmless.yaml"
PAIRS = 64
PARSE_TOKENS = 48
WARMUP_PAIRS = 2
TARGET_RATIO = 10.0
SETTINGS = JudgeSettings(methods=("logprob",))
PARSE_REQUEST = (
    "\n\nReply with your verdict as 'Verdict: (A)' or 'Verdict: (B)', then one sentence giving the reason."
)
# The letter right after "Verdict" (any case, with ':' or '*' between), else the first "(A)"/"(B)".
VERDICT = re.compile(r"(?i:verdict)[\s:*]*\(?([AB])\b")
OPTION = re.compile(r"\(([AB])\)")


# -- workload -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    pairs: list[Pair]
    human: dict[str, str]  # pair id -> id of the response people chose
    rows_read: int  # file rows read to find the pairs: rows_read - len(pairs) were skipped


def load_workload(count: int) -> Workload:
    """The first ``count`` usable hh-rlhf pairs, as charter's importer reads them."""
    parsed = parse_label_file(DATA, "hh-rlhf")
    pairs: list[Pair] = []
    human: dict[str, str] = {}
    rows_read = 0
    for label, prompt in zip(parsed.labels, parsed.prompts, strict=True):
        if len(pairs) == count:
            break
        rows_read = label["source_row"]
        item = PromptItem(prompt.prompt_id, prompt.family, prompt.messages)
        pair = make_pair(item, label["response_a"], label["response_b"])
        if pair is not None:
            pairs.append(pair)
            human[pair.pair_id] = label["preferred_id"]
    if len(pairs) < count:
        raise ValueError(f"{DATA} has only {len(pairs)} usable pairs; {count} are needed")
    return Workload(pairs, human, rows_read)


# -- the two judges -----------------------------------------------------------------------------------


def timed(action: Callable[[], T]) -> tuple[float, T]:
    start = time.perf_counter()
    result = action()
    return time.perf_counter() - start, result


@dataclass(frozen=True)
class Verdicts:
    """One judge's output: p_a per comparison and, per order, P(A better) in that order."""

    p_a: list[float]
    p_a_orders: list[tuple[float, float]]  # (A shown first, A shown second)


def logprob_judge(
    backend: Backend, comparisons: Sequence[Comparison], constitution: Constitution
) -> Verdicts:
    rows = judge(backend, comparisons, constitution, SETTINGS)
    return Verdicts([r["p_a"] for r in rows], [(r["p_a_first"], r["p_a_second"]) for r in rows])


@dataclass(frozen=True)
class ParseVerdicts(Verdicts):
    texts: list[str]  # per order: A shown first, then A shown second, for each comparison
    letters: list[str | None]  # the parsed option per text; None is a parse failure
    generated_tokens: int
    finish_reasons: dict[str, int]


def parse_messages(comparison: Comparison, a_shown_first: bool) -> list[Message]:
    """The logprob judge's prompt, asking for a written verdict instead of reading the next token."""
    template = SETTINGS.template()
    (ask,) = judge_messages(template, comparison.pair, comparison.principle, a_shown_first, cot=False)
    return [{"role": ask["role"], "content": ask["content"] + PARSE_REQUEST}]


def parse_verdict(text: str) -> str | None:
    match = VERDICT.search(text) or OPTION.search(text)
    return match.group(1) if match else None


def order_p_a(letter: str | None, a_shown_first: bool) -> float:
    """1 when the verdict names A's option, 0 when it names B's, 0.5 when nothing was parsed."""
    if letter is None:
        return 0.5
    return 1.0 if (letter == "A") == a_shown_first else 0.0


def parse_judge(backend: Backend, comparisons: Sequence[Comparison], max_tokens: int) -> ParseVerdicts:
    """Both orders of every comparison in one greedy ``generate`` call, then the regex verdicts."""
    # Every first order, then every second, as tasks.label.judge orders them: the prefix cache then
    # serves both judges' second orders alike.
    asks = [parse_messages(c, a_first) for a_first in (True, False) for c in comparisons]
    seeds = [int(c.label_id[:15], 16) + order for order in (0, 1) for c in comparisons]
    sampling = SamplingSettings(n=1, temperature=0.0, top_p=1.0, max_tokens=max_tokens)
    completions = [samples[0] for samples in backend.generate(asks, sampling, seeds)]
    letters = [parse_verdict(c.text) for c in completions]
    count = len(comparisons)
    orders = [(order_p_a(letters[i], True), order_p_a(letters[count + i], False)) for i in range(count)]
    return ParseVerdicts(
        p_a=[order_average(*pair) for pair in orders],
        p_a_orders=orders,
        texts=[c.text for c in completions],
        letters=letters,
        generated_tokens=sum(c.num_tokens for c in completions),
        finish_reasons=dict(Counter(c.finish_reason or "none" for c in completions)),
    )


def forget_prefixes(backend: Any) -> None:
    """Empty vLLM's prefix cache, so a timed call cannot reuse another call's prefill."""
    if backend.name == "vllm":
        backend.llm.reset_prefix_cache()


# -- figures ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JudgeRun:
    judge: str
    comparisons: int
    seconds: float  # wall time of the timed call
    warmup_s: float
    decisive: int  # pairs with p_a != 0.5
    agree_with_human: int  # decisive pairs whose preferred response is the one people chose
    orders_agree: int  # pairs whose two orders prefer the same response
    orders_decided: int  # orders (two per pair) that preferred a response
    first_shown_picked: int  # of those, how many picked the response shown first
    load_average_1m: float  # right after the timed call

    @property
    def comparisons_per_s(self) -> float:
        return self.comparisons / self.seconds

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "comparisons_per_s": self.comparisons_per_s}


def preferred_ids(pairs: Sequence[Pair], verdicts: Verdicts) -> list[str | None]:
    """The response each pair's p_a prefers (None: exactly undecided)."""
    return [
        {"a": pair.response_a_id, "b": pair.response_b_id, "tie": None}[preference(p_a)]
        for pair, p_a in zip(pairs, verdicts.p_a, strict=True)
    ]


def summarise(name: str, workload: Workload, verdicts: Verdicts, seconds: float, warmup_s: float) -> JudgeRun:
    preferred = preferred_ids(workload.pairs, verdicts)
    decided = [(p, pair) for p, pair in zip(preferred, workload.pairs, strict=True) if p is not None]
    # Per order, the choice as shown: A first means "first shown" is A; A second means it is B.
    shown = [(first, True) for first, _ in verdicts.p_a_orders] + [
        (second, False) for _, second in verdicts.p_a_orders
    ]
    picks = [preference(p) for p, _ in shown]
    first_picked = sum(
        1 for pick, (_, a_first) in zip(picks, shown, strict=True) if pick == ("a" if a_first else "b")
    )
    return JudgeRun(
        judge=name,
        comparisons=len(workload.pairs),
        seconds=seconds,
        warmup_s=warmup_s,
        decisive=len(decided),
        agree_with_human=sum(1 for p, pair in decided if p == workload.human[pair.pair_id]),
        orders_agree=sum(
            1 for first, second in verdicts.p_a_orders if preference(first) == preference(second) != "tie"
        ),
        orders_decided=sum(1 for pick in picks if pick != "tie"),
        first_shown_picked=first_picked,
        load_average_1m=os.getloadavg()[0],
    )


def mean_prompt_tokens(backend: Any, comparisons: Sequence[Comparison]) -> dict[str, float]:
    """Mean prompt length per order in tokens, as the backend tokenizes each judge's prompt."""
    template = SETTINGS.template()
    logprob = [
        len(
            prompt_token_ids(
                backend.tokenizer, judge_messages(template, c.pair, c.principle, f, cot=False), ANSWER_PREFIX
            )
        )
        for c in comparisons
        for f in (True, False)
    ]
    parse = [
        len(prompt_token_ids(backend.tokenizer, parse_messages(c, f)))
        for c in comparisons
        for f in (True, False)
    ]
    return {"logprob": statistics.mean(logprob), "parse": statistics.mean(parse)}


def open_judge_backend(kind: str, model: ResolvedModel, block_size: int | None) -> Backend:
    """Must run under ``if __name__ == "__main__":`` for vLLM: the engine spawns its worker process."""
    if kind == "vllm":
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
        from tasks.backends.vllm_backend import VLLMBackend

        return VLLMBackend(model, engine_args={"block_size": block_size} if block_size else None)
    from tasks.backends.hf import HFBackend

    return HFBackend(model)


def measure(
    backend: Backend,
    workload: Workload,
    comparisons: list[Comparison],
    constitution: Constitution,
    parse_tokens: int,
) -> tuple[JudgeRun, JudgeRun, ParseVerdicts, Verdicts, dict[str, int]]:
    """Warm-up, then the timed call, for the logprob judge and then for the parse judge; also the
    logprob call's prefix-cache hits (vLLM)."""
    warm = comparisons[:WARMUP_PAIRS]
    logprob_warm_s, _ = timed(lambda: logprob_judge(backend, warm, constitution))
    forget_prefixes(backend)
    with recording_cache_hits(backend) if backend.name == "vllm" else nullcontext({}) as hits:
        logprob_s, logprob = timed(lambda: logprob_judge(backend, comparisons, constitution))
    logprob_run = summarise("logprob", workload, logprob, logprob_s, logprob_warm_s)
    parse_warm_s, _ = timed(lambda: parse_judge(backend, warm, parse_tokens))
    forget_prefixes(backend)
    parse_s, parsed = timed(lambda: parse_judge(backend, comparisons, parse_tokens))
    parse_run = summarise("parse", workload, parsed, parse_s, parse_warm_s)
    return logprob_run, parse_run, parsed, logprob, hits


def judges_agreement(workload: Workload, logprob: Verdicts, parsed: Verdicts) -> dict[str, int]:
    both = [
        (x, y)
        for x, y in zip(
            preferred_ids(workload.pairs, logprob), preferred_ids(workload.pairs, parsed), strict=True
        )
        if x is not None and y is not None
    ]
    return {"decisive_for_both": len(both), "agree": sum(1 for x, y in both if x == y)}


def run(kind: str, count: int, parse_tokens: int, block_size: int | None) -> dict[str, Any]:
    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    workload = load_workload(count)
    constitution = load_constitution(CONSTITUTION)
    resolve_s, model = timed(lambda: resolve_model(None))
    load_s, backend = timed(lambda: open_judge_backend(kind, model, block_size))
    try:
        comparisons = plan_comparisons(workload.pairs, constitution, SETTINGS, backend.model_id, backend.name)
        logprob_run, parse_run, parsed, logprob, hits = measure(
            backend, workload, comparisons, constitution, parse_tokens
        )
        prompt_tokens = mean_prompt_tokens(backend, comparisons)
        prefill = None
        if kind == "vllm":
            prompts = judge_prompt_ids(backend, comparisons, SETTINGS.template())
            prefill = prefill_figures(backend, prompts, logprob_run.comparisons_per_s, hits)
    finally:
        backend.close()
        gc.collect()
    ratio = logprob_run.comparisons_per_s / parse_run.comparisons_per_s
    generations = 2 * len(comparisons)
    failures = sum(1 for letter in parsed.letters if letter is None)
    return {
        "environment": environment(),
        "workload": {
            "data": str(DATA.resolve()),
            "pairs": len(workload.pairs),
            "rows_read": workload.rows_read,
            "skipped": workload.rows_read - len(workload.pairs),
            "constitution": constitution.name,
            "principles": dict(Counter(c.principle.id for c in comparisons)),
            "model_id": model.model_id,
            "backend": kind,
            "parse_tokens": parse_tokens,
            "prompt_tokens_mean": prompt_tokens,
        },
        "resolve_model_s": resolve_s,
        "load_s": load_s,
        "judges": {"logprob": logprob_run.as_dict(), "parse": parse_run.as_dict()},
        "parse": {
            "generations": generations,
            "failures": failures,
            "failure_rate": failures / generations,
            "generated_tokens": parsed.generated_tokens,
            "finish_reasons": parsed.finish_reasons,
            "outputs": [
                {
                    "pair_id": comparisons[index % len(comparisons)].pair.pair_id,
                    "a_shown_first": index < len(comparisons),
                    "text": text,
                    "verdict": letter,
                }
                for index, (text, letter) in enumerate(zip(parsed.texts, parsed.letters, strict=True))
            ],
        },
        "agreement": judges_agreement(workload, logprob, parsed),
        "prefill_limit": prefill,
        "ratio": ratio,
        "target": {"ratio": TARGET_RATIO, "pass": ratio >= TARGET_RATIO},
        "total_s": time.perf_counter() - started,
        "load_average_1m": {"before": load_before, "after": os.getloadavg()[0]},
    }


# -- report -------------------------------------------------------------------------------------------


def _share(part: int, whole: int) -> str:
    return f"{part}/{whole} ({100 * part / whole:.1f}%)" if whole else f"{part}/0 (-)"


TABLE_HEADER = (
    f"{'judge':<9}{'pairs':>6}{'seconds':>9}{'pairs/s':>9}{'decisive':>10}"
    f"{'agrees with human':>20}{'orders agree':>16}{'first shown picked':>22}"
)


def _table_row(m: dict[str, Any]) -> str:
    return (
        f"{m['judge']:<9}{m['comparisons']:>6}{m['seconds']:>9.2f}{m['comparisons_per_s']:>9.2f}"
        f"{m['decisive']:>10}{_share(m['agree_with_human'], m['decisive']):>20}"
        f"{_share(m['orders_agree'], m['comparisons']):>16}"
        f"{_share(m['first_shown_picked'], m['orders_decided']):>22}"
    )


def _one_line(text: str, width: int = 100) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 3] + "..."


def print_report(report: dict[str, Any]) -> None:
    env, work, parse = report["environment"], report["workload"], report["parse"]
    judges, agreement = report["judges"], report["agreement"]
    tokens = work["prompt_tokens_mean"]
    print(
        f"\ncharter judge benchmark: {work['pairs']} hh-rlhf pairs (the first usable of "
        f"{work['rows_read']} rows, {work['skipped']} skipped) from {Path(work['data']).name}, "
        "each judged in both orders; "
        f"constitution {work['constitution']}, one sampled principle per pair ({len(work['principles'])} "
        f"distinct); {work['model_id']} on {work['backend']}"
    )
    print(
        f"mean prompt tokens per order: logprob {tokens['logprob']:.1f}, parse {tokens['parse']:.1f}; "
        f"parse judge: greedy, up to {work['parse_tokens']} new tokens"
    )
    print(
        f"{env['cpus']} CPUs, Python {env['python']}, torch {env['torch']} ({env['torch_threads']} threads), "
        f"transformers {env['transformers']}, vllm {env['vllm']}\n"
    )
    print(TABLE_HEADER)
    print("-" * len(TABLE_HEADER))
    for m in judges.values():
        print(_table_row(m))
    verdict = "PASS" if report["target"]["pass"] else "MISS"
    print(
        f"\nlogprob / parse: {report['ratio']:.1f}x in pairs/s; target >= {TARGET_RATIO:.0f}x: {verdict}\n"
        f"the judges agree on {_share(agreement['agree'], agreement['decisive_for_both'])} of the pairs "
        f"decisive for both\n"
        f"parse failures: {_share(parse['failures'], parse['generations'])} generations; "
        f"{parse['generated_tokens']:,} tokens generated "
        f"({parse['generated_tokens'] / parse['generations']:.1f} per generation); finish reasons: "
        + ", ".join(f"{k} {v}" for k, v in sorted(parse["finish_reasons"].items()))
    )
    what = "engine start" if work["backend"] == "vllm" else "model load"
    print(
        f"{work['backend']} {what} {report['load_s']:.1f} s (not counted); warm-up on {WARMUP_PAIRS} pairs "
        f"(untimed): logprob {judges['logprob']['warmup_s']:.1f} s, "
        f"parse {judges['parse']['warmup_s']:.1f} s; "
        f"load average after each timed call: logprob {judges['logprob']['load_average_1m']:.2f}, "
        f"parse {judges['parse']['load_average_1m']:.2f}"
    )
    print(
        f"model preparation (resolve_model): {report['resolve_model_s']:.1f} s; whole run "
        f"{report['total_s']:.0f} s; 1-minute load average {report['load_average_1m']['before']:.2f} before, "
        f"{report['load_average_1m']['after']:.2f} after (this benchmark alone keeps it near 2).\n"
        "pairs/s = pairs judged in both orders / wall time of the judge's one timed call, excluding load "
        "and warm-up.\ndecisive: p_a != 0.5; agrees with human: of the decisive pairs; orders agree: both "
        "orders prefer the same response;\nfirst shown picked: of the orders that preferred a response."
    )
    print_prefill(report["prefill_limit"])
    print("first parse outputs (A shown first):")
    for output in parse["outputs"][:4]:
        print(f"  [{output['verdict'] or 'FAILED'}] {_one_line(output['text'])}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures as JSON to PATH")
    parser.add_argument(
        "--pairs", type=int, default=PAIRS, metavar="N", help=f"judge the first N pairs (default {PAIRS})"
    )
    parser.add_argument(
        "--backend", choices=("vllm", "hf"), default="vllm", help="the backend both judges run on"
    )
    parser.add_argument(
        "--parse-tokens",
        type=int,
        default=PARSE_TOKENS,
        metavar="K",
        help=f"the parse judge generates up to K tokens per order (default {PARSE_TOKENS})",
    )
    parser.add_argument(
        "--block-size",
        type=int,
        metavar="T",
        help="vLLM KV block size in tokens (the prefix cache's unit; default: the backend's)",
    )
    args = parser.parse_args(argv)
    if args.pairs < WARMUP_PAIRS:
        parser.error(f"--pairs must be at least {WARMUP_PAIRS}")
    if args.parse_tokens < 1:
        parser.error("--parse-tokens must be at least 1")
    report = run(args.backend, args.pairs, args.parse_tokens, args.block_size)
    print_report(report)
    write_figures(report, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
