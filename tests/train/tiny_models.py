"""A tiny random encoder with MiniLM's tokenizer: a reward-model backbone that trains and scores in
moments, for tests of the loops around a reward model rather than of what it learns."""

from __future__ import annotations

from typing import Any

import torch

from tasks.train.reward_model import backbone_path


def tiny_bert(seed: int = 0) -> tuple[Any, Any]:
    """(a 1-layer, 32-wide BERT with one output, randomly initialised from ``seed``; MiniLM's tokenizer)."""
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(backbone_path("minilm"))
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=1,
    )
    torch.manual_seed(seed)
    return BertForSequenceClassification(config), tokenizer
