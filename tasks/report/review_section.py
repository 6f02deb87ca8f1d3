"""The run report's "Review" section: what the review bench would serve next and what people did there.

The audit sections say how far the AI labels can be trusted; this one says where to act on
it. It shows how many pairs each bundled queue holds (so a reader sees at once whether the
judge left work for people), the labels made in the bench per annotator and queue, the AI-human
agreement as those labels come in (next to how many pairs people have labelled), and people's
own position bias, measured as the judge's is. Annotator names and queue titles come from the
store and the queue file: like every text, they are escaped by the renderers, never here.
"""

from __future__ import annotations

import shlex

from tasks.core.errors import CharterError
from tasks.report.blocks import Block, Note, Section, Table, records_table
from tasks.report.data import ReportData, ReviewData
from tasks.review.queues import load_queues, queue_sizes
from tasks.store.store import Store


def review_section(data: ReportData) -> Section:
    review = data.review
    if review is None:  # report data built without the bench's part (older callers)
        return Section("review", "Review", (Note("No data: the review bench was not read."),))
    blocks: list[Block] = [*_queue_blocks(review), Note(open_bench_sentence(str(data.store_root)))]
    used = bool(review.bench_labels)
    if used:
        blocks.append(
            records_table(
                review.bench_labels,
                {"annotator": "annotator", "queue": "queue", "labels": "labels", "pairs": "pairs"},
                "Labels made in the bench, per annotator and queue (a changed vote counts again)",
            )
        )
    else:
        blocks.append(Note("Nobody has labelled in the review bench yet."))
    overall = next((r for r in data.audit["ai_human_agreement"] if r["dimension"] == "overall"), None)
    if overall:
        blocks.append(_agreement_table(review, overall))
    elif used:
        blocks.append(Note("No data: no AI label falls on a pair with a decisive human majority yet."))
    bias = data.audit["human_position_bias"]
    if bias:
        blocks.append(
            records_table(
                bias,
                {
                    "annotator": "annotator",
                    "labels": "decisive labels",
                    "first_shown_rate": "shown first wins",
                    "z": "z",
                },
                "People's position bias: how often the response shown first (on the left) wins; "
                "0.5 is none, z beyond ±2 is unlikely by chance",
            )
        )
    elif used:
        blocks.append(Note("No data: no decisive human label with a known display order yet."))
    return Section("review", "Review", tuple(blocks))


def open_bench_sentence(store: str) -> str:
    """How to open the bench on this store, as one sentence with commands to paste."""
    quoted = shlex.quote(store)
    return (
        f"To label these pairs, run `charter review add-annotator NAME --store {quoted}` "
        f"(it prints a one-time login link), then `charter review --store {quoted}`."
    )


def _queue_blocks(review: ReviewData) -> list[Block]:
    if review.queue_error is not None:
        return [Note(f"The review queues could not be read: {review.queue_error}", "warning")]
    return [
        records_table(
            review.queues,
            {"queue": "queue", "title": "what it holds", "pairs": "pairs"},
            "Review queues: pairs each bundled queue holds now (served lowest priority first)",
        )
    ]


def _agreement_table(review: ReviewData, overall: dict) -> Table:
    return Table(
        (
            "human-labelled pairs",
            "of them in the bench",
            "AI labels compared",
            "pairs compared",
            "accuracy",
            "Cohen's kappa",
        ),
        (
            (
                review.human_pairs,
                review.bench_pairs,
                overall["labels"],
                overall["pairs"],
                overall["accuracy"],
                overall["cohen_kappa"],
            ),
        ),
        "AI-human agreement so far (AI labels vs the human majority, decisive pairs)",
    )


def bench_summary_lines(store: Store, store_path: str) -> list[str]:
    """What ``charter run`` prints last: the pairs each bundled queue holds and how to open the
    bench, so the end of every run points at the work the judge left for people. A queue that
    cannot be read is reported in the line, not raised: the run itself has succeeded."""
    try:
        sizes = queue_sizes(store, load_queues(None, store))
        held = ", ".join(f"{name} {count:,}" for name, count in sizes.items())
        first = f"review queues (pairs each holds): {held}"
    except (CharterError, OSError) as exc:
        first = f"review queues could not be read: {exc}"
    return [first, open_bench_sentence(store_path)]
