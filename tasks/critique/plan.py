"""Finding where every selected generation's critique chain stands, from plain parameters.

Shared by the critique flow's tasks (what is left to run) and ``charter export`` (which
chains are complete), so both follow chains exactly the same way.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from tasks.backends.settings import BackendSettings, model_identity
from tasks.constitution.model import load_constitution
from tasks.critique.chains import ChainState, GenerationItem, RoundSettings, load_few_shot, walk_chains
from tasks.generate.generation import generations_of, select_prompts
from tasks.store.store import Store


class CritiqueSettings(BaseModel):
    """A critique run's settings as plain data: flow parameters, and what ``export`` must repeat."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rounds: int = 1
    critique_tokens: int = 96
    revision_tokens: int = 160
    temperature: float = 0.7
    top_p: float = 0.95
    seed: int = 0
    few_shot_path: str | None = None

    def config(self) -> RoundSettings:
        """The working config (a few-shot file path becomes its validated examples)."""
        values = self.model_dump(exclude={"few_shot_path"})
        few_shot = load_few_shot(self.few_shot_path) if self.few_shot_path else ()
        return RoundSettings(**values, few_shot=few_shot)


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
        store, selection["prompt_set"], families=selection["families"], limit=selection["limit"]
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
