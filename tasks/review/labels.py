"""Bench labels: the ``human_labels`` row a submission becomes, and publishing them to the store.

A bench label is an ordinary human label (same pair id, vote and columns as an imported one),
plus where it was made: ``source_format`` 'review', the ``queue``, which response was shown
first (``shown_first``) and whether the AI's verdict was shown (``ai_shown``). Its id hashes
the submission key the page was rendered with, so a resubmitted form stores nothing new, while
a changed vote (a new page, a new key) is a new label whose latest version counts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tasks.core.hashing import content_id
from tasks.ingest.human_labels.label_rows import LabelOrigin, human_label_row
from tasks.review.display import shows_second_first
from tasks.review.items import ReviewItem
from tasks.review.state import CHOICES, BenchState
from tasks.store.runs import RunContext, recorded_run
from tasks.store.store import Store

BENCH_FILE = Path("review") / "bench.sqlite3"


def bench_path(store: Store) -> Path:
    return store.root / BENCH_FILE


def bench_label_row(
    item: ReviewItem,
    *,
    annotator: str,
    queue: str,
    choice: str,
    submission: str,
    seed: int,
    ai_shown: bool,
    bench_file: str,
    confidence: float | None = None,
    comment: str | None = None,
) -> dict[str, Any]:
    """The label for ``choice`` ('left', 'right' or 'tie') on the page this annotator was shown."""
    swapped = shows_second_first(seed, annotator, item.pair_id)
    left, right = (item.second_text, item.first_text) if swapped else (item.first_text, item.second_text)
    row = human_label_row(
        messages=item.messages,
        response_a=left,
        response_b=right,
        choice=CHOICES[choice],
        annotator=annotator,
        origin=LabelOrigin(
            source_format="review",
            source_file=bench_file,
            source_sha256=content_id("review_submission", submission),
        ),
        source_row=0,  # the bench numbers its labels when it stores them (BenchState.submit)
        confidence=confidence,
        comment=comment,
    )
    label_id = content_id(
        "review_label", {"submission": submission, "pair_id": item.pair_id, "annotator": annotator}
    )
    return {
        **row,
        "label_id": label_id,
        "queue": queue,
        "ai_shown": ai_shown,
        "shown_first": "second" if swapped else "first",
    }


def publish(state: BenchState, store: Store, run_id: str) -> int:
    """Write every label not yet in the store to ``human_labels``; returns how many were added.

    Marked published only after the store has them: a crash in between republishes the same
    label ids, which the store drops.
    """
    pending = state.unpublished()
    if not pending:
        return 0
    added = store.append("human_labels", [row for _, row in pending], run_id)
    state.mark_published(pending[-1][0])
    return added


def publish_pending(store: Store, run: RunContext | None = None) -> int:
    """Publish the labels a stopped (or killed) bench left unpublished; returns how many were added.

    Under ``run`` (the merge's, say) they are that run's rows; without one, a ``review-publish``
    run is recorded, and only when there is something to publish.
    """
    path = bench_path(store)
    if not path.exists():
        return 0
    state = BenchState(path)
    if not state.unpublished():
        return 0
    if run is not None:
        added = publish(state, store, run.run_id)
        run.rows_added["human_labels"] += added
        return added
    with recorded_run(store, "review-publish", {"bench": str(path)}) as publishing:
        return publish_pending(store, publishing)
