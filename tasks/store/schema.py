"""The store's tables: one Arrow schema each, and the column that is its content-hash id.

Every table carries ``run_id`` (which flow run first wrote the row) and ``created_at``;
neither is part of the id, so re-running a step adds nothing. Later pipeline stages
fill tables defined here; adding a column later is safe (old files read it as NULL).
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

TIMESTAMP = pa.timestamp("us", tz="UTC")
_LINEAGE = [
    pa.field("run_id", pa.string(), nullable=False),
    pa.field("created_at", TIMESTAMP, nullable=False),
]


@dataclass(frozen=True)
class TableSpec:
    name: str
    id_column: str
    schema: pa.Schema
    doc: str


def _spec(name: str, id_column: str, doc: str, fields: list[pa.Field]) -> TableSpec:
    return TableSpec(name=name, id_column=id_column, schema=pa.schema([*fields, *_LINEAGE]), doc=doc)


def _pair_fields() -> list[pa.Field]:
    """Columns shared by every pairwise label: the conversation and the two responses as shown."""
    return [
        pa.field("pair_id", pa.string(), nullable=False),
        pa.field("prompt_id", pa.string(), nullable=False),
        pa.field("response_a_id", pa.string(), nullable=False),
        pa.field("response_b_id", pa.string(), nullable=False),
        pa.field("response_a", pa.string(), nullable=False),
        pa.field("response_b", pa.string(), nullable=False),
        # 'a', 'b' or 'tie', relative to the order shown above.
        pa.field("choice", pa.string(), nullable=False),
        # The preferred response's id (NULL for a tie): comparable across orders and sources.
        pa.field("preferred_id", pa.string()),
        # The same preference without the display order: 'first' or 'second' names the pair's
        # responses in id order ('tie' for a tie). Stored, not derived per query, so audit
        # scans over millions of labels read one short column instead of three ids.
        pa.field("vote", pa.string(), nullable=False),
    ]


TABLES: dict[str, TableSpec] = {
    spec.name: spec
    for spec in [
        _spec(
            "prompts",
            "row_id",
            "Conversations to respond to. prompt_id hashes the messages only, so one conversation "
            "keeps one id across prompt sets and label files; row_id adds the set, source id and family.",
            [
                pa.field("row_id", pa.string(), nullable=False),
                pa.field("prompt_id", pa.string(), nullable=False),
                pa.field("prompt_set", pa.string(), nullable=False),
                pa.field("source_id", pa.string()),
                pa.field("family", pa.string()),
                pa.field("text", pa.string(), nullable=False),
                pa.field("messages", pa.string(), nullable=False),  # JSON list of {role, content}
            ],
        ),
        _spec(
            "constitutions",
            "constitution_id",
            "Every constitution version ever used, by content hash.",
            [
                pa.field("constitution_id", pa.string(), nullable=False),
                pa.field("name", pa.string(), nullable=False),
                pa.field("version", pa.string(), nullable=False),
                pa.field("description", pa.string()),
                pa.field("source_path", pa.string()),
                pa.field("principle_count", pa.int32(), nullable=False),
                pa.field("document", pa.string(), nullable=False),  # the validated constitution as JSON
            ],
        ),
        _spec(
            "principles",
            "row_id",
            "Each principle of each constitution version, for per-principle joins.",
            [
                pa.field("row_id", pa.string(), nullable=False),
                pa.field("constitution_id", pa.string(), nullable=False),
                pa.field("principle_id", pa.string(), nullable=False),
                pa.field("principle_hash", pa.string(), nullable=False),
                pa.field("title", pa.string(), nullable=False),
                pa.field("critique", pa.string()),
                pa.field("revision", pa.string()),
                pa.field("comparison", pa.string()),
                pa.field("tags", pa.list_(pa.string()), nullable=False),
                pa.field("rules", pa.string(), nullable=False),  # JSON list of rules
            ],
        ),
        _spec(
            "generations",
            "generation_id",
            "Sampled candidate responses per prompt.",
            [
                pa.field("generation_id", pa.string(), nullable=False),
                pa.field("prompt_id", pa.string(), nullable=False),
                pa.field("model", pa.string(), nullable=False),
                pa.field("backend", pa.string(), nullable=False),
                pa.field("params", pa.string(), nullable=False),  # JSON sampling parameters
                pa.field("sample_index", pa.int32(), nullable=False),
                pa.field("text", pa.string(), nullable=False),
                pa.field("finish_reason", pa.string()),
                pa.field("num_tokens", pa.int32()),
            ],
        ),
        _spec(
            "critiques",
            "critique_id",
            "Critique/revision rounds against sampled principles.",
            [
                pa.field("critique_id", pa.string(), nullable=False),
                pa.field("generation_id", pa.string(), nullable=False),
                pa.field("prompt_id", pa.string(), nullable=False),
                pa.field("round", pa.int32(), nullable=False),
                pa.field("principle_id", pa.string(), nullable=False),
                pa.field("principle_hash", pa.string(), nullable=False),
                pa.field("constitution_id", pa.string(), nullable=False),
                pa.field("model", pa.string(), nullable=False),
                pa.field("input_text", pa.string(), nullable=False),
                pa.field("critique", pa.string(), nullable=False),
                pa.field("revision", pa.string(), nullable=False),
            ],
        ),
        _spec(
            "ai_labels",
            "label_id",
            "AI judge and rule labels with per-order probabilities.",
            [
                pa.field("label_id", pa.string(), nullable=False),
                *_pair_fields(),
                pa.field("judge_model", pa.string(), nullable=False),
                pa.field("method", pa.string(), nullable=False),  # logprob | cot | rule
                pa.field("principle_id", pa.string()),
                pa.field("constitution_id", pa.string()),
                pa.field("p_a_first", pa.float64()),  # P(A better) with A shown first
                pa.field("p_a_second", pa.float64()),  # P(A better) with A shown second
                pa.field("p_a", pa.float64(), nullable=False),  # the soft label
                pa.field("orders_agree", pa.bool_()),
                pa.field("rule_id", pa.string()),
                pa.field("rationale", pa.string()),
                pa.field("principle_hash", pa.string()),
                pa.field("judge_backend", pa.string()),
                pa.field("params", pa.string()),  # JSON: template hash and method settings
            ],
        ),
        _spec(
            "human_labels",
            "label_id",
            "Human pairwise labels, imported from annotation tools or made in the review bench, "
            "with their source.",
            [
                pa.field("label_id", pa.string(), nullable=False),
                *_pair_fields(),
                pa.field("annotator", pa.string(), nullable=False),
                pa.field("confidence", pa.float64()),
                pa.field("comment", pa.string()),
                pa.field("source_format", pa.string(), nullable=False),
                pa.field("source_file", pa.string(), nullable=False),
                pa.field("source_sha256", pa.string(), nullable=False),
                pa.field("source_row", pa.int64(), nullable=False),
                # Which response (in id order) was shown first / on the left: 'first' or
                # 'second'; NULL when the source does not say (hh-rlhf, TRL files).
                pa.field("shown_first", pa.string()),
                # The review-bench queue the label was made from (NULL for imports).
                pa.field("queue", pa.string()),
                # Whether the AI's verdict was shown as a suggestion (NULL when unknown).
                pa.field("ai_shown", pa.bool_()),
            ],
        ),
        _spec(
            "preferences",
            "row_id",
            "Merged preference sets: one row per pair of a set, chosen over rejected, with the soft "
            "target, the weight, what decided it and every label, principle and constitution behind it.",
            [
                pa.field("row_id", pa.string(), nullable=False),  # hash of set_id and pair_id
                pa.field("set_id", pa.string(), nullable=False),
                pa.field("pair_id", pa.string(), nullable=False),
                pa.field("prompt_id", pa.string(), nullable=False),
                pa.field("family", pa.string()),
                pa.field("prompt", pa.string(), nullable=False),  # JSON list of {role, content}
                pa.field("chosen_id", pa.string(), nullable=False),
                pa.field("rejected_id", pa.string(), nullable=False),
                pa.field("chosen", pa.string(), nullable=False),
                pa.field("rejected", pa.string(), nullable=False),
                pa.field("target", pa.float64(), nullable=False),  # P(chosen is better)
                pa.field("weight", pa.float64(), nullable=False),
                # human | human-majority | rule | ai: which source decided the row.
                pa.field("decided_by", pa.string(), nullable=False),
                pa.field("human_labels", pa.int32(), nullable=False),
                pa.field("human_agreement", pa.float64()),  # majority share; NULL without humans
                pa.field("ai_labels", pa.int32(), nullable=False),
                pa.field("ai_p_chosen", pa.float64()),  # mean AI P(chosen better); NULL without AI
                pa.field("label_ids", pa.list_(pa.string()), nullable=False),
                pa.field("principle_ids", pa.list_(pa.string()), nullable=False),
                pa.field("constitution_ids", pa.list_(pa.string()), nullable=False),
            ],
        ),
        _spec(
            "preference_sets",
            "set_id",
            "Each merged preference set: its content-hash id, the merge policy and what was kept or dropped.",
            [
                pa.field("set_id", pa.string(), nullable=False),
                pa.field("policy", pa.string(), nullable=False),  # JSON
                pa.field("rows", pa.int64(), nullable=False),
                pa.field("counts", pa.string(), nullable=False),  # JSON: kept by source, dropped by reason
            ],
        ),
        _spec(
            "reward_scores",
            "score_id",
            "A reward model's (or ensemble's) verdict on stored pairs: P(first response better) "
            "and its spread over the ensemble's members, the uncertainty meter's raw data.",
            [
                pa.field("score_id", pa.string(), nullable=False),  # hash of (checkpoint, pair)
                pa.field("pair_id", pa.string(), nullable=False),
                pa.field("prompt_id", pa.string(), nullable=False),
                # The pair's responses in id order ('first' sorts first), as votes name them.
                pa.field("first_id", pa.string(), nullable=False),
                pa.field("second_id", pa.string(), nullable=False),
                pa.field("checkpoint", pa.string(), nullable=False),  # the checkpoint folder's name
                pa.field("checkpoint_run_id", pa.string(), nullable=False),  # the run that trained it
                pa.field("members", pa.int32(), nullable=False),
                pa.field("p_first", pa.float64(), nullable=False),  # members' mean P(first better)
                pa.field("p_first_std", pa.float64(), nullable=False),  # its spread (0 for one model)
                pa.field("score_first", pa.float64(), nullable=False),  # mean reward of each response
                pa.field("score_second", pa.float64(), nullable=False),
            ],
        ),
        _spec(
            "runs",
            "event_id",
            "One row when a flow run starts and one when it ends: lineage for every other row.",
            [
                pa.field("event_id", pa.string(), nullable=False),
                pa.field("flow", pa.string(), nullable=False),
                pa.field("status", pa.string(), nullable=False),  # started | completed | failed | cancelled
                pa.field("parameters", pa.string(), nullable=False),  # JSON
                pa.field("code_version", pa.string(), nullable=False),
                pa.field("constitution_ids", pa.list_(pa.string()), nullable=False),
                pa.field("input_hashes", pa.string(), nullable=False),  # JSON {path: sha256}
                pa.field("rows_added", pa.string()),  # JSON {table: n}, on the closing event
                pa.field("error", pa.string()),
                # The process that wrote the event: tells a killed run from a running one (runs.py).
                pa.field("host", pa.string()),
                pa.field("pid", pa.int64()),
                pa.field("process_start", pa.string()),  # "<boot id>:<start ticks>", from /proc
            ],
        ),
    ]
}


def table_spec(name: str) -> TableSpec:
    try:
        return TABLES[name]
    except KeyError:
        raise KeyError(f"unknown table {name!r}; tables: {', '.join(TABLES)}") from None
