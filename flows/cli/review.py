"""``charter review``: the feedback bench in the browser, and the annotators who may use it.

``charter review`` serves the bench (its options come from :class:`ReviewSettings`);
``charter review add-annotator NAME`` creates a person and prints their one-time login link.
The bench is a long-running server, not a flow: each label is committed to the bench's own
database at once and published to the store's ``human_labels`` as it goes, recorded as a
``review`` run.
"""

from __future__ import annotations

from typing import Annotated

import typer

from flows.cli.common import out
from flows.cli.options import Flag, Options, settings_options
from flows.cli.store_option import DEFAULT_STORE_PATH, StoreOption
from tasks.core.errors import CharterError
from tasks.review.settings import ReviewSettings
from tasks.store.store import Store

review_app = typer.Typer(
    name="review",
    help="The review bench: people label the pairs the AI judge is least sure of, in the browser.",
)

_queues = Flag(names=("--queues",), path=True)


@review_app.callback(invoke_without_command=True)
@settings_options(settings=Options(ReviewSettings, flags={"queues": _queues}))
def review(ctx: typer.Context, settings: ReviewSettings, store: StoreOption = DEFAULT_STORE_PATH) -> None:
    """Serve the review bench on 127.0.0.1 until Ctrl-C or SIGTERM.

    Queues are SQL (--queues FILE, default datasets/review/queues.yaml); a bad queue file
    fails before the server starts. Create people first: charter review add-annotator NAME.
    """
    if ctx.invoked_subcommand is not None:
        return
    from tasks.review.serve import serve

    target = Store.existing(store)
    published = serve(target, settings, announce=lambda line: out.print(line, highlight=False))
    out.print(f"review bench stopped; {published} labels published to {target.root}")


@review_app.command("add-annotator")
@settings_options(settings=Options(ReviewSettings, only=("host", "port")))
def add_annotator(
    name: Annotated[str, typer.Argument(help="The annotator's name, as it appears on their labels.")],
    viewer: Annotated[
        bool, typer.Option("--viewer", help="A read-only viewer: sees progress and the audit, cannot label.")
    ] = False,
    new_link: Annotated[
        bool, typer.Option("--new-link", help="Issue a new login link for an existing annotator.")
    ] = False,
    *,
    settings: ReviewSettings,
    store: StoreOption = DEFAULT_STORE_PATH,
) -> None:
    """Create an annotator (or a viewer) and print their login link; only its hash is stored.

    The link points at the bench serving this store when one runs (whatever its port), else
    at --host and --port.
    """
    from tasks.review.bench import ServerLock, bench_address, login_link
    from tasks.review.labels import bench_path
    from tasks.review.state import BenchState

    if not name.strip() or len(name) > 100 or any(ord(c) < 32 for c in name):
        raise CharterError("an annotator name is 1-100 printable characters")
    target = Store.existing(store)
    state = BenchState(bench_path(target))
    token = state.add_annotator(name, "viewer" if viewer else "annotator", new_link=new_link)
    address = ServerLock(target).serving_address() or bench_address(settings, settings.port)
    link = login_link(address, token)
    out.print(
        f"{'viewer' if viewer else 'annotator'} {name}: open this link once to sign in", highlight=False
    )
    out.print(link, highlight=False, soft_wrap=True)
