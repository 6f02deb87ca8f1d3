"""The review bench's settings: the single source of its defaults (CLI options derive from it)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool

LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")


class ReviewSettings(BaseModel):
    """How ``charter review`` serves the bench and hands out items."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    host: str = "127.0.0.1"
    """Address to listen on. Anything but loopback also needs --allow-remote."""

    port: Annotated[int, Field(strict=True, ge=0, le=65535)] = 8765
    """Port to listen on (0: any free port, printed at start)."""

    allow_remote: StrictBool = False
    """Allow binding to a non-loopback address (the bench then answers the network: use TLS in front)."""

    queues: str | None = None
    """YAML file of review queues (default: the bundled datasets/review/queues.yaml)."""

    overlap: Annotated[int, Field(strict=True, ge=1, le=100)] = 2
    """How many different annotators label each item (for agreement; Argilla's min_submitted)."""

    lease_seconds: Annotated[float, Field(strict=True, gt=0, le=86_400)] = 300
    """How long an item shown to one annotator is held back from the others."""

    question: Literal["principle", "general"] = "principle"
    """What to ask: the comparison instruction of the pair's principle, or a general
    helpful-and-harmless question for every pair."""

    seed: Annotated[int, Field(strict=True, ge=0)] = 0
    """Seeds the order the two responses are shown in, per annotator and pair."""

    snapshot_size: Annotated[int, Field(strict=True, ge=1, le=1_000_000)] = 1000
    """Items per queue taken from each run of its SQL (the queue is rerun when they run out)."""

    publish_seconds: Annotated[float, Field(strict=True, ge=0, le=3600)] = 10
    """Submitted labels are written to the store at most this often (and at shutdown);
    until then they are safe in the bench's own database, and `charter merge` publishes them."""
