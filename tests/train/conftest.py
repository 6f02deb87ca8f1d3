"""What the training tests share."""

from __future__ import annotations

import pytest

from tests.train.tiny_models import tiny_bert


@pytest.fixture(scope="module")
def tiny_backbone(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A 1-layer, 32-wide BERT with MiniLM's tokenizer, saved as a model folder: seconds to train."""
    folder = tmp_path_factory.mktemp("tiny-bert")
    model, tokenizer = tiny_bert(seed=0)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)
