"""Finding where every selected generation's critique chain stands, from plain parameters.

Shared by the critique flow's tasks (what is left to run) and ``charter export`` (which
chains are complete), so both follow chains exactly the same way.
"""

from __future__ import annotations

from typing import Any

from tasks.backends.settings import BackendSettings, model_identity
from tasks.constitution.model import load_constitution
from tasks.critique.chains import ChainState, GenerationItem, walk_chains
from tasks.critique.settings import CritiqueSettings
from tasks.generate.generation import generations_of, select_prompts
from tasks.store.store import Store


def chain_states(
    store: Store,
    generation_ids: set[str] | None,
    selection: dict[str, Any],
    constitution_path: str,
    settings: CritiqueSettings,
    spec: BackendSettings,
) -> list[ChainState]:
    """Every selected generation's chain, followed through the rounds already stored."""
    prompts = select_prompts(
        store,
        selection["prompt_set"],
        families=selection["families"],
        limit=selection["limit"],
        prompt_ids=selection.get("prompt_ids"),
    )
    items = [
        GenerationItem(generation_id=gid, prompt=prompt, text=text)
        for gid, prompt, text in generations_of(store, prompts)
        if generation_ids is None or gid in generation_ids
    ]
    stored = {row["critique_id"]: row for row in store.read("critiques").to_pylist()}
    model = model_identity(spec)
    return walk_chains(
        items,
        stored,
        load_constitution(constitution_path),
        settings.config(),
        model.model_id,
        spec.kind,
    )
