"""Benchmark: sampling throughput of the vLLM backend against transformers and the machine's FLOP limit.

One run, on one workload: 32 prompts x 4 samples x up to 64 new tokens with the embedded default
model (SmolLM2-135M-Instruct, float32, ``resolve_model(None)``), fixed sampling (temperature 1.0,
top_p 0.95, fixed per-prompt seeds derived as ``tasks.generate.generation`` does). The 32 prompts come from
the bundled ``datasets/healthcare-scheduling/prompts.jsonl``, taken round-robin over its families
in file order (every family's first prompt, then every family's second, ...). It measures:

* the limit: torch fp32 matmul GFLOP/s at the model's shapes and the tokens/s that allows
  (``generate_vllm.flop_limit``: how the parameters are counted and why);
* ``hf batched``: ``HFBackend(max_batch_sequences=128)``, all 128 sequences in one ``generate`` call
  (left padding, ``num_return_sequences=4``), after an untimed warm-up; the model load is timed on
  its own;
* ``hf naive``: the same loaded transformers model, one sequence per ``model.generate`` call (no
  padding, ``num_return_sequences=1``, same sampling), 4 calls per prompt, on the first
  ``--naive-prompts`` prompts (default 4: at ~12 tokens/s all 32 would take ~11 minutes; tokens/s
  stays comparable);
* ``vllm``: the vLLM variants of ``generate_vllm.ENGINES``, one engine subprocess each; the
  headline ``vllm`` figure is charter's defaults with per-prompt seeds (``VLLMBackend.generate``).

Sampling is not forced to run to 64 tokens (no ``min_tokens`` everywhere), and the backends stop at
end-of-sequence at different points, so each figure counts the tokens actually generated (the sum of
``Completion.num_tokens``, end-of-sequence token included) and tokens/s = generated tokens / wall time
of the timed generation call(s); loading and warm-up are reported separately and never counted.

Order: the matmul rates, then transformers (batched, then naive; its model is closed and collected),
then the vLLM engines one after another, each in a process of its own that exits before the next
starts, so no two measurements share the cores. ``VLLM_LOGGING_LEVEL`` defaults to WARNING; each
engine's log is kept in ``--logs``. The 1-minute load average is printed before and after and with
every figure: on a 2-core machine anything else running skews every figure.

Targets (reported as PASS/MISS, never asserted): vLLM >= 30% of the FLOP limit, >= 15x naive
transformers and >= 1.6x batched transformers in tokens/s.

Run from the project root::

    .venv/bin/python bench/generate.py                      # the full run (~15 minutes)
    .venv/bin/python bench/generate.py --skip-vllm          # the limit and transformers only
    .venv/bin/python bench/generate.py --engines charter    # only charter's defaults on vLLM
    .venv/bin/python bench/generate.py --json generate.json # also write the figures as JSON
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

# bench/machine.py and bench/generate_vllm.py: this script's folder is on sys.path
from generate_vllm import ENGINES, flop_limit, print_limit, print_variants, run_engine_variant, variant_rows
from machine import environment, write_figures

try:
    from tasks.backends.base import Completion, SamplingSettings
    from tasks.backends.chat import prompt_token_ids
    from tasks.backends.models import ResolvedModel, resolve_model
    from tasks.generate.generation import prompt_seed
    from tasks.ingest.prompt_sets import PromptRecord, load_prompt_set
except ImportError:  # not installed: run from a checkout
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tasks.backends.base import Completion, SamplingSettings
    from tasks.backends.chat import prompt_token_ids
    from tasks.backends.models import ResolvedModel, resolve_model
    from tasks.generate.generation import prompt_seed
    from tasks.ingest.prompt_sets import PromptRecord, load_prompt_set

T = TypeVar("T")

ROOT = Path(__file__).resolve().parent.parent
PROMPT_SET = ROOT / "datasets" / "healthcare-scheduling" / "prompts.jsonl"
PROMPTS = 32
SAMPLING = SamplingSettings(n=4, temperature=1.0, top_p=0.95, max_tokens=64, seed=20_240_611)
WARMUP = SamplingSettings(n=2, temperature=1.0, top_p=0.95, max_tokens=8, seed=1)
WARMUP_PROMPTS = 2
NAIVE_PROMPTS = 4
TARGET_VS_NAIVE = 15.0
TARGET_VS_BATCHED = 1.6
TARGET_OF_LIMIT = 0.30

Conversation = list[dict[str, str]]


# -- workload -----------------------------------------------------------------------------------------


def round_robin_by_family(records: Sequence[PromptRecord], count: int) -> list[PromptRecord]:
    """``count`` prompts: each family's first (families in file order), then each one's second, ..."""
    families: dict[str | None, list[PromptRecord]] = {}
    for record in records:
        families.setdefault(record.family, []).append(record)
    chosen: list[PromptRecord] = []
    for rank in range(max(len(group) for group in families.values())):
        for group in families.values():
            if rank < len(group) and len(chosen) < count:
                chosen.append(group[rank])
    if len(chosen) < count:
        raise ValueError(f"the prompt set has only {len(chosen)} prompts; {count} are needed")
    return chosen


@dataclass(frozen=True)
class Workload:
    prompts: list[PromptRecord]
    conversations: list[Conversation]
    seeds: list[int]

    @property
    def families(self) -> dict[str, int]:
        return dict(Counter(p.family or "(none)" for p in self.prompts))


def load_workload() -> Workload:
    prompts = round_robin_by_family(load_prompt_set(PROMPT_SET), PROMPTS)
    return Workload(
        prompts=prompts,
        conversations=[list(p.messages) for p in prompts],
        seeds=[prompt_seed(SAMPLING.seed, p.prompt_id) for p in prompts],
    )


# -- measurement ---------------------------------------------------------------------------------------


def timed(action: Callable[[], T]) -> tuple[float, T]:
    start = time.perf_counter()
    result = action()
    return time.perf_counter() - start, result


@dataclass(frozen=True)
class Measurement:
    backend: str
    load_s: float  # model load / engine start, not counted in tokens/s
    warmup_s: float
    prompts: int
    sequences: int
    generated_tokens: int
    seconds: float  # wall time of the timed generation call(s)
    finish_reasons: dict[str, int]
    calls: int
    load_average_1m: float  # right after the timed calls: well above 2 means other work shared the cores

    @property
    def tokens_per_s(self) -> float:
        return self.generated_tokens / self.seconds

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "tokens_per_s": self.tokens_per_s}


@dataclass(frozen=True)
class Failure:
    """A backend that did not finish the workload: the figures stay out, the reason goes in."""

    backend: str
    load_s: float | None
    calls: int
    error: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarise(
    backend: str, load_s: float, warmup_s: float, seconds: float, outputs: list[list[Completion]], calls: int
) -> Measurement:
    completions = [c for per_prompt in outputs for c in per_prompt]
    return Measurement(
        backend=backend,
        load_s=load_s,
        warmup_s=warmup_s,
        prompts=len(outputs),
        sequences=len(completions),
        generated_tokens=sum(c.num_tokens for c in completions),
        seconds=seconds,
        finish_reasons=dict(Counter(c.finish_reason or "none" for c in completions)),
        calls=calls,
        load_average_1m=os.getloadavg()[0],
    )


def warm_up(backend: Any, workload: Workload) -> float:
    """One small untimed call: first-call initialisation stays out of the timed figure."""
    warm_s, _ = timed(
        lambda: backend.generate(
            workload.conversations[:WARMUP_PROMPTS], WARMUP, workload.seeds[:WARMUP_PROMPTS]
        )
    )
    return warm_s


def measure_batched(backend: Any, workload: Workload, name: str, load_s: float) -> Measurement:
    """All conversations in one ``Backend.generate`` call, after a warm-up."""
    warmup_s = warm_up(backend, workload)
    seconds, outputs = timed(lambda: backend.generate(workload.conversations, SAMPLING, workload.seeds))
    return summarise(name, load_s, warmup_s, seconds, outputs, calls=1)


def naive_completion(hf: Any, input_ids: list[int], seed: int) -> Completion:
    """One sequence from one ``model.generate`` call: no batch, no padding."""
    torch = hf._torch
    ids = torch.tensor([input_ids], device=hf.device)
    torch.manual_seed(seed)
    with torch.inference_mode():
        output = hf.model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            do_sample=True,
            temperature=SAMPLING.temperature,
            top_p=SAMPLING.top_p,
            top_k=None,
            max_new_tokens=SAMPLING.max_tokens,
            num_return_sequences=1,
            pad_token_id=hf.tokenizer.pad_token_id,
        )
    tokens = output[0, ids.shape[1] :].tolist()
    eos = hf.tokenizer.eos_token_id
    finished = eos in tokens
    kept = tokens[: tokens.index(eos)] if finished else tokens
    return Completion(
        text=hf.tokenizer.decode(kept, skip_special_tokens=True),
        finish_reason="stop" if finished else "length",
        num_tokens=len(kept) + int(finished),  # counted as HFBackend counts: the EOS token included
    )


def measure_naive(hf: Any, workload: Workload, prompts: int, load_s: float) -> Measurement:
    """``SAMPLING.n`` separate single-sequence calls per prompt, for the first ``prompts`` prompts."""
    inputs = [prompt_token_ids(hf.tokenizer, c) for c in workload.conversations[:prompts]]
    outputs: list[list[Completion]] = []
    seconds = 0.0
    for input_ids, seed in zip(inputs, workload.seeds[:prompts], strict=True):
        samples = []
        for sample in range(SAMPLING.n):
            call_s, completion = timed(lambda i=input_ids, s=seed + sample: naive_completion(hf, i, s))
            seconds += call_s
            samples.append(completion)
        outputs.append(samples)
    return summarise("hf naive", load_s, 0.0, seconds, outputs, calls=prompts * SAMPLING.n)


def prompt_tokens(tokenizer: Any, workload: Workload) -> list[int]:
    """Each prompt's length in tokens, as both backends tokenize it (``prompt_token_ids``)."""
    return [len(prompt_token_ids(tokenizer, c)) for c in workload.conversations]


def run_transformers(
    model: ResolvedModel, workload: Workload, naive_prompts: int
) -> tuple[list[Measurement], list[int]]:
    """Batched, then naive, on one loaded model; also returns the prompts' token counts."""
    from tasks.backends.hf import HFBackend

    load_s, hf = timed(lambda: HFBackend(model, max_batch_sequences=SAMPLING.n * PROMPTS))
    try:
        lengths = prompt_tokens(hf.tokenizer, workload)
        results = [measure_batched(hf, workload, "hf batched", load_s)]
        if naive_prompts:
            results.append(measure_naive(hf, workload, naive_prompts, load_s))
        return results, lengths
    finally:
        hf.close()
        gc.collect()


def run_vllm(workload: Workload, names: Sequence[str], logs: Path) -> dict[str, dict[str, Any]]:
    """Each named engine variant's figures, measured in its own subprocess, one after another."""
    job = {
        "conversations": workload.conversations,
        "seeds": workload.seeds,
        "sampling": SAMPLING.as_dict(),
        "warmup": WARMUP.as_dict(),
    }
    logs.mkdir(parents=True, exist_ok=True)
    engines = {}
    for variant in (v for v in ENGINES if v.name in names):
        engines[variant.name] = run_engine_variant(variant, job, logs)
        print(f"vllm {variant.name}: {engines[variant.name]}", file=sys.stderr, flush=True)  # progress
    return engines


def headline(engines: dict[str, dict[str, Any]], prompts: int) -> Measurement | Failure | None:
    """charter's defaults with per-prompt seeds: the ``vllm`` row of the backend table."""
    charter = engines.get("charter")
    if charter is None:
        return None
    seeded = charter["measured"].get("seeded")
    if seeded is None:
        return Failure("vllm", charter.get("started_s"), 1, charter.get("error", "not measured"))
    return Measurement(
        backend="vllm",
        load_s=charter["started_s"],
        warmup_s=charter["warmup_s"],
        prompts=prompts,
        sequences=seeded["sequences"],
        generated_tokens=seeded["generated_tokens"],
        seconds=seeded["seconds"],
        finish_reasons=seeded["finish_reasons"],
        calls=1,
        load_average_1m=seeded["load_average_1m"],
    )


# -- report -------------------------------------------------------------------------------------------


def ratios(results: dict[str, Measurement | Failure]) -> dict[str, dict[str, float | None]]:
    """Each measured backend's tokens/s over naive and over batched transformers (None: not measured)."""
    done = {name: m for name, m in results.items() if isinstance(m, Measurement)}

    def over(name: str, base: str) -> float | None:
        return done[name].tokens_per_s / done[base].tokens_per_s if base in done else None

    return {
        name: {"vs_naive": over(name, "hf naive"), "vs_batched": over(name, "hf batched")} for name in done
    }


def targets(
    results: dict[str, Measurement | Failure], rates: dict[str, dict[str, float | None]], limit: float
) -> dict[str, Any]:
    """None where a side was not measured; a vLLM failure misses every target."""
    if isinstance(results.get("vllm"), Failure):
        return {"of_limit": False, "vs_naive": False, "vs_batched": False, "vllm_failed": True}
    vllm = rates.get("vllm", {})
    naive, batched = vllm.get("vs_naive"), vllm.get("vs_batched")
    measured = results.get("vllm")
    return {
        "of_limit": None if measured is None else measured.tokens_per_s / limit >= TARGET_OF_LIMIT,
        "vs_naive": None if naive is None else naive >= TARGET_VS_NAIVE,
        "vs_batched": None if batched is None else batched >= TARGET_VS_BATCHED,
        "vllm_failed": False,
    }


def _verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else "PASS" if ok else "MISS"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}x"


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}s"


TABLE_HEADER = (
    f"{'backend':<12}{'sequences':>10}{'tokens':>8}{'seconds':>9}{'tokens/s':>10}"
    f"{'vs naive':>10}{'vs hf batched':>15}{'load':>8}   finish reasons"
)


def _table_row(name: str, m: dict[str, Any], rate: dict[str, float | None] | None) -> str:
    if "error" in m:
        return (
            f"{name:<12}{'FAILED':>10}{'-':>8}{'-':>9}{'-':>10}{'-':>10}{'-':>15}{_seconds(m['load_s']):>8}"
        )
    assert rate is not None
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(m["finish_reasons"].items()))
    return (
        f"{name:<12}{m['sequences']:>10}{m['generated_tokens']:>8}{m['seconds']:>9.2f}"
        f"{m['tokens_per_s']:>10.1f}{_ratio(rate['vs_naive']):>10}{_ratio(rate['vs_batched']):>15}"
        f"{_seconds(m['load_s']):>8}   {reasons}"
    )


def _backend_line(name: str, m: dict[str, Any]) -> str:
    what = "engine start" if name == "vllm" else "model load"
    if "error" in m:
        load = _seconds(m["load_s"])
        return f"  {name}: FAILED in {m['calls']} generate call(s) ({what} {load}): {m['error']}"
    per_seq = m["generated_tokens"] / m["sequences"]
    warm = f", warm-up {m['warmup_s']:.1f} s (untimed)" if m["warmup_s"] else ""
    return (
        f"  {name}: {m['generated_tokens']} tokens generated ({per_seq:.1f} per sequence, "
        f"{m['prompts']} prompts) in {m['calls']} generate call(s); {what} {m['load_s']:.1f} s{warm}; "
        f"load average {m['load_average_1m']:.2f}"
    )


def print_report(report: dict[str, Any]) -> None:
    env, work = report["environment"], report["workload"]
    print(
        f"\ncharter generation benchmark: {work['prompts']} prompts x {work['n']} samples x up to "
        f"{work['max_tokens']} new tokens, {work['model_id']} (float32), temperature "
        f"{work['temperature']}, top_p {work['top_p']}, seed {work['seed']}"
    )
    print(
        f"prompts: {work['prompt_set']}, round-robin over {len(work['families'])} families; "
        f"{work['prompt_tokens']:,} prompt tokens, {work['prompt_tokens'] * work['n']:,} to prefill "
        f"with n={work['n']}"
    )
    print(
        f"{env['cpus']} CPUs, Python {env['python']}, torch {env['torch']} ({env['torch_threads']} threads), "
        f"transformers {env['transformers']}, vllm {env['vllm']}\n"
    )
    print(TABLE_HEADER)
    print("-" * len(TABLE_HEADER))
    for name, m in report["backends"].items():
        print(_table_row(name, m, report["ratios"].get(name)))
    limit = report["limit"]
    vllm = report["backends"].get("vllm", {})
    share = f"{vllm['tokens_per_s'] / limit['limit_tokens_per_s']:.0%}" if "tokens_per_s" in vllm else "-"
    goals = report["targets"]
    failed = " (vLLM failed)" if goals["vllm_failed"] else ""
    print(
        f"\ntargets: vllm >= {TARGET_OF_LIMIT:.0%} of the FLOP limit ({share}): "
        f"{_verdict(goals['of_limit'])}; "
        f"vllm >= {TARGET_VS_NAIVE:.0f}x naive: {_verdict(goals['vs_naive'])}; "
        f"vllm >= {TARGET_VS_BATCHED}x hf batched: {_verdict(goals['vs_batched'])}{failed}"
    )
    for name, m in report["backends"].items():
        print(_backend_line(name, m))
    print_limit(limit)
    print_variants(report["vllm_variants"])
    print(
        f"model preparation (resolve_model): {report['resolve_model_s']:.1f} s; whole run "
        f"{report['total_s']:.0f} s; 1-minute load average {report['load_average_1m']['before']:.2f} before, "
        f"{report['load_average_1m']['after']:.2f} after (this benchmark alone keeps it near 2).\n"
        "tokens = sum of Completion.num_tokens (EOS included; samples may stop early, at different "
        "points per backend);\ntokens/s = tokens / wall time of the timed generate call(s), excluding "
        "load and warm-up. Order: matmul, transformers, then each vLLM engine."
    )


def run(engines: Sequence[str], naive_prompts: int, logs: Path) -> dict[str, Any]:
    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    workload = load_workload()
    resolve_s, model = timed(lambda: resolve_model(None))
    limit = flop_limit(Path(model.path))
    transformers, lengths = run_transformers(model, workload, naive_prompts)
    env = environment()  # the threads transformers ran with
    vllm_engines = run_vllm(workload, engines, logs)
    measured: list[Measurement | Failure] = list(transformers)
    vllm = headline(vllm_engines, len(workload.prompts))
    if vllm is not None:
        measured.append(vllm)
    results = {m.backend: m for m in measured}
    rates = ratios(results)
    return {
        "environment": env,
        "workload": {
            "prompt_set": str(PROMPT_SET.relative_to(ROOT)),
            "prompts": len(workload.prompts),
            "families": workload.families,
            "prompt_tokens": sum(lengths),
            "model_id": model.model_id,
            "naive_prompts": naive_prompts,
            **SAMPLING.as_dict(),
        },
        "resolve_model_s": resolve_s,
        "limit": limit,
        "backends": {name: m.as_dict() for name, m in results.items()},
        "ratios": rates,
        "vllm_engines": vllm_engines,
        "vllm_variants": variant_rows(vllm_engines),
        "targets": targets(results, rates, limit["limit_tokens_per_s"]),
        "total_s": time.perf_counter() - started,
        "load_average_1m": {"before": load_before, "after": os.getloadavg()[0]},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures as JSON to PATH")
    parser.add_argument("--skip-vllm", action="store_true", help="measure the limit and transformers only")
    parser.add_argument("--skip-naive", action="store_true", help="skip the one-sequence-per-call run")
    parser.add_argument(
        "--naive-prompts",
        type=int,
        default=NAIVE_PROMPTS,
        metavar="K",
        help=f"time the naive run on the first K prompts (default {NAIVE_PROMPTS}, 4 calls each)",
    )
    names = [v.name for v in ENGINES]
    parser.add_argument(
        "--engines",
        nargs="+",
        choices=names,
        default=names,
        metavar="NAME",
        help=f"the vLLM engine variants to run (default all: {', '.join(names)})",
    )
    parser.add_argument(
        "--logs",
        type=Path,
        default=ROOT / "bench" / "results" / "vllm-logs",
        help="folder for each vLLM engine's log (default bench/results/vllm-logs)",
    )
    args = parser.parse_args(argv)
    if not 1 <= args.naive_prompts <= PROMPTS:
        parser.error(f"--naive-prompts must be between 1 and {PROMPTS}")
    engines = [] if args.skip_vllm else args.engines
    report = run(engines, 0 if args.skip_naive else args.naive_prompts, args.logs)
    print_report(report)
    write_figures(report, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
