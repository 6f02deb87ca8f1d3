"""What a review page shows for a queued pair: the conversation, both responses, the question
to answer and the AI's verdict (shown only where a queue asks for it).

Items are read from the store in one read-only query per batch of pair ids: the pair's texts
from its AI labels (or, for pairs only people labelled, from the human labels), the
conversation from ``prompts`` and the question from the principle the AI judged it under.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import duckdb

from tasks.core.conversation import Message

GENERAL_QUESTION = (
    "Which response is more helpful, honest and harmless? Pick the one a careful, caring "
    "assistant would give."
)


@dataclass(frozen=True)
class ReviewItem:
    """One pair as a reviewer sees it; the two responses are kept in id order here."""

    pair_id: str
    prompt_id: str
    family: str
    messages: list[Message]
    first_id: str
    first_text: str
    second_id: str
    second_text: str
    principle_id: str | None  # the principle most of the pair's AI labels judged under
    comparison: str | None  # that principle's comparison instruction
    ai_p_first: float | None  # mean AI P(first response better); None without AI labels
    ai_labels: int

    def question(self, mode: str) -> str:
        """``principle``: the principle's comparison instruction where there is one; ``general``."""
        if mode == "principle" and self.comparison:
            return self.comparison
        return GENERAL_QUESTION

    @property
    def ai_vote(self) -> str | None:
        """'first', 'second' or 'tie' by the mean AI probability; None without AI labels."""
        if self.ai_p_first is None:
            return None
        if self.ai_p_first == 0.5:
            return "tie"
        return "first" if self.ai_p_first > 0.5 else "second"

    @property
    def ai_confidence(self) -> float | None:
        return None if self.ai_p_first is None else max(self.ai_p_first, 1 - self.ai_p_first)


# One row per requested pair: texts from its AI labels or, for pairs only people labelled, from
# its human labels; the AI verdict (p_a is P(response_a better), turned to the first response
# by id) and principle from the AI labels alone.
_ITEMS_SQL = """
with wanted as (select unnest($pair_ids) as pair_id),
labels as (
    select true as ai, pair_id, prompt_id, response_a_id < response_b_id as a_first, response_a_id,
           response_b_id, response_a, response_b, p_a, principle_id, constitution_id, created_at
    from ai_labels semi join wanted using (pair_id)
    union all
    select false, pair_id, prompt_id, response_a_id < response_b_id, response_a_id,
           response_b_id, response_a, response_b, null, null, null, created_at
    from human_labels semi join wanted using (pair_id)
),
pairs as (
    select pair_id, any_value(prompt_id) as prompt_id,
           any_value(if(a_first, response_a_id, response_b_id)) as first_id,
           any_value(if(a_first, response_a, response_b)) as first_text,
           any_value(if(a_first, response_b_id, response_a_id)) as second_id,
           any_value(if(a_first, response_b, response_a)) as second_text,
           avg(if(a_first, p_a, 1 - p_a)) filter (where ai) as ai_p_first,
           count(*) filter (where ai) as ai_labels,
           mode(principle_id) filter (where ai) as principle_id,
           arg_max(constitution_id, created_at) filter (where ai) as constitution_id
    from labels
    group by pair_id
)
select f.pair_id, f.prompt_id, coalesce(pf.family, '(none)') as family,
       (select arg_min(messages, created_at) from prompts p where p.prompt_id = f.prompt_id) as messages,
       f.first_id, f.first_text, f.second_id, f.second_text, f.principle_id,
       (select any_value(comparison) from principles c
        where c.principle_id = f.principle_id and c.constitution_id = f.constitution_id) as comparison,
       f.ai_p_first, f.ai_labels
from pairs f left join prompt_families pf using (prompt_id)
"""


def load_items(con: duckdb.DuckDBPyConnection, pair_ids: list[str]) -> dict[str, ReviewItem]:
    """The items for ``pair_ids`` that the store has texts for, by pair id.

    ``con`` is a :func:`tasks.store.sql.readonly_connection` (its views are the store's).
    """
    if not pair_ids:
        return {}
    rows = con.execute(_ITEMS_SQL, {"pair_ids": pair_ids}).fetchall()
    items = {}
    for row in rows:
        (pair, prompt, family, messages, first_id, first_text, second_id, second_text,
         principle, comparison, p_first, ai_labels) = row  # fmt: skip
        if messages is None:  # a label whose conversation is not stored: nothing to show
            continue
        items[pair] = ReviewItem(
            pair_id=pair,
            prompt_id=prompt,
            family=family,
            messages=json.loads(messages),
            first_id=first_id,
            first_text=first_text,
            second_id=second_id,
            second_text=second_text,
            principle_id=principle,
            comparison=comparison,
            ai_p_first=p_first,
            ai_labels=int(ai_labels),
        )
    return items
