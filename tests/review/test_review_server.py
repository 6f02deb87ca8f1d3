"""The real ``charter review`` server, as a process: one per store, refusals before it binds, and
no acknowledged label lost however it stops.

Each test starts the console script the README tells people to run (``--port 0``: the port it
prints), signs an annotator in over HTTP the way a browser does (login link, session cookie,
the CSRF token and submission key parsed from the page), and stops the server with the
signal a service manager would send. The helpers here are shared with the browser test.
"""

from __future__ import annotations

import contextlib
import html
import itertools
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tasks.review.labels import bench_path, publish_pending
from tasks.review.state import BenchState
from tasks.store.sql import run_query
from tasks.store.store import Store
from tests.conftest import PROJECT_ROOT
from tests.prefect_servers import group_alive, stop, wait_for
from tests.review.conftest import CASES, UNCERTAIN_ORDER

pytestmark = pytest.mark.integration

CHARTER = Path(sys.executable).parent / "charter"
ANNOUNCED = re.compile(r"review bench at (http://\S+):(\d+) ")
HIDDEN = re.compile(r'<input type="hidden" name="(\w+)" value="([^"]*)">')
_logs = itertools.count()


def charter(*args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    """A short ``charter`` command that must finish by itself (a server that started instead of
    refusing would hit ``timeout`` and fail the test, not hang it)."""
    return subprocess.run(
        [str(CHARTER), *args],
        cwd=PROJECT_ROOT,
        env={**os.environ, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@dataclass
class Served:
    """A running ``charter review``: its process (leader of its own group), address and log."""

    process: subprocess.Popen
    address: str  # what the server printed, e.g. http://127.0.0.1:40123
    url: str  # where a client on this machine reaches it
    port: int
    log: Path

    def output(self) -> str:
        return self.log.read_text()

    def terminate(self) -> int:
        """SIGTERM, as a service manager stops it; returns the exit code once it has exited."""
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(20)
        assert not group_alive(self.process.pid), "a process of the server's group outlived it"
        return code


@contextlib.contextmanager
def serving(store: Store, *options: str) -> Iterator[Served]:
    """``charter review --store S --port 0 OPTIONS`` until the block ends (then stopped, group and all)."""
    log = store.root.parent / f"review-{next(_logs)}.log"
    with log.open("w") as handle:
        process = subprocess.Popen(
            [str(CHARTER), "review", "--store", str(store.root), "--port", "0", *options],
            cwd=PROJECT_ROOT,
            env={**os.environ, "COLUMNS": "200"},
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        found = wait_for(lambda: ANNOUNCED.search(log.read_text()), 30, "charter review start", process, log)
        host, port = found.group(1), int(found.group(2))
        yield Served(process, f"{host}:{port}", f"http://127.0.0.1:{port}", port, log)
    finally:
        stop(process)


def add_annotator(store: Store, name: str, port: int) -> str:
    """``charter review add-annotator NAME``: the login link it prints last."""
    made = charter("review", "add-annotator", name, "--store", str(store.root), "--port", str(port))
    assert made.returncode == 0, made.stderr
    return made.stdout.strip().splitlines()[-1]


def hidden_fields(page: str) -> dict[str, str]:
    return {name: html.unescape(value) for name, value in HIDDEN.findall(page)}


def signed_in(store: Store, served: Served, name: str) -> httpx.Client:
    """A client holding ``name``'s session, signed in through the login link as a browser is."""
    link = add_annotator(store, name, served.port)
    assert link.startswith(f"http://127.0.0.1:{served.port}/login?token=")
    client = httpx.Client(base_url=served.url, timeout=10)
    page = client.get(link.removeprefix(f"http://127.0.0.1:{served.port}"))
    assert page.status_code == 200
    signed = client.post("/login", data={"token": hidden_fields(page.text)["token"]})
    assert (signed.status_code, signed.headers["location"]) == (303, "/")
    assert client.cookies.get("charter_review_session")
    return client


def next_form(client: httpx.Client, queue: str) -> dict[str, str]:
    """The hidden fields of the queue's next review form (csrf, queue, pair_id, submission)."""
    page = client.get(f"/queue/{queue}")
    assert page.status_code == 200 and 'id="review"' in page.text, page.text[-500:]
    return hidden_fields(page.text)


def submit(client: httpx.Client, form: dict[str, str], choice: str) -> None:
    answer = client.post("/label", data={**form, "choice": choice})
    assert (answer.status_code, answer.headers["location"]) == (303, f"/queue/{form['queue']}"), answer.text


def bench_rows(store: Store) -> list[dict]:
    return run_query(
        store,
        "select label_id, pair_id, annotator, choice, queue from human_labels "
        "where source_format = 'review' order by source_row",
    ).records()


def test_a_second_server_on_the_same_store_is_refused_while_the_first_serves(bench_store: Store) -> None:
    with serving(bench_store) as first:
        second = charter("review", "--store", str(bench_store.root), "--port", "0")
        assert second.returncode == 1
        message = second.stdout + second.stderr
        assert "another charter review already serves this store" in message
        assert f"pid {first.process.pid} at {first.address}" in message  # who holds it
        # The first is untouched: still running, still answering.
        assert first.process.poll() is None
        assert httpx.get(f"{first.url}/login").status_code == 200
        assert first.terminate() == 0


def test_sigterm_publishes_every_acknowledged_label_and_leaves_no_process(bench_store: Store) -> None:
    # Publishing every hour: only the shutdown's last publish can put the labels in the store.
    with serving(bench_store, "--publish-seconds", "3600") as served:
        client = signed_in(bench_store, served, "rosa")
        forms = []
        for choice in ("left", "right", "tie"):
            forms.append(next_form(client, "uncertain"))
            submit(client, forms[-1], choice)
        submit(client, forms[0], "left")  # the browser resubmits its first form: the same label
        assert bench_rows(bench_store) == []  # all three wait in the bench database
        assert served.terminate() == 0
        assert "review bench stopped; 3 labels published" in served.output()
    rows = bench_rows(bench_store)
    served_pairs = [CASES[name].pair_id for name in UNCERTAIN_ORDER[:3]]
    assert [row["pair_id"] for row in rows] == [form["pair_id"] for form in forms] == served_pairs
    assert [(row["choice"], row["annotator"], row["queue"]) for row in rows] == [
        ("a", "rosa", "uncertain"),
        ("b", "rosa", "uncertain"),
        ("tie", "rosa", "uncertain"),
    ]
    runs = run_query(
        bench_store, "select status, rows_added from runs where flow = 'review' order by status desc"
    ).rows
    assert runs == [("started", None), ("completed", '{"human_labels": 3}')]


def test_sigkill_after_an_acknowledged_submit_loses_nothing_and_publishes_once(bench_store: Store) -> None:
    with serving(bench_store, "--publish-seconds", "3600") as served:
        client = signed_in(bench_store, served, "rosa")
        form = next_form(client, "uncertain")
        submit(client, form, "right")  # the 303 is the acknowledgement
        os.killpg(served.process.pid, signal.SIGKILL)
        assert served.process.wait(10) == -signal.SIGKILL
        assert not group_alive(served.process.pid)
    pending = BenchState(bench_path(bench_store)).unpublished()
    assert [(row["pair_id"], row["choice"]) for _, row in pending] == [(form["pair_id"], "b")]
    assert bench_rows(bench_store) == []

    assert publish_pending(bench_store) == 1
    assert publish_pending(bench_store) == 0  # marked published: a second pass adds nothing
    (row,) = bench_rows(bench_store)
    assert (row["label_id"], row["pair_id"], row["choice"]) == (
        pending[0][1]["label_id"],
        form["pair_id"],
        "b",
    )
    published_by = (
        "select count(distinct run_id) from runs where flow = 'review-publish' and status = 'completed'"
    )
    assert run_query(bench_store, published_by).rows == [(1,)]

    # The killed server's lock died with it: a new server starts, and publishes nothing again.
    with serving(bench_store) as again:
        assert again.terminate() == 0
        assert "review bench stopped; 0 labels published" in again.output()
    assert len(bench_rows(bench_store)) == 1


def test_a_network_address_needs_allow_remote_and_is_refused_before_anything_opens(
    bench_store: Store,
) -> None:
    refused = charter("review", "--store", str(bench_store.root), "--host", "0.0.0.0", "--port", "0")
    assert refused.returncode == 1
    assert (
        "--host 0.0.0.0 would open the bench to the network; pass --allow-remote to mean it"
        in refused.stdout + refused.stderr
    )
    assert "review bench at" not in refused.stdout
    assert not (bench_store.root / "review").exists()  # no lock taken, no bench database, no socket

    with serving(bench_store, "--host", "0.0.0.0", "--allow-remote") as remote:
        assert remote.address.startswith("http://0.0.0.0:")
        assert "warning: the bench answers on 0.0.0.0, beyond this machine" in remote.output()
        assert httpx.get(f"{remote.url}/login").status_code == 200
        assert remote.terminate() == 0


def test_a_bad_queue_file_is_refused_naming_file_and_line_before_anything_opens(
    bench_store: Store, tmp_path: Path
) -> None:
    queues = tmp_path / "queues.yaml"
    queues.write_text(
        "queues:\n"
        "  - name: fine\n"
        "    title: A good queue\n"
        "    sql: select pair_id, 0 as priority from ai_labels\n"
        "  - name: wipes\n"
        "    title: Not a select\n"
        "    sql: delete from ai_labels\n"
        "  - name: nameless\n"
        "    title: No pair id\n"
        "    sql: select prompt_id, 1 as priority from ai_labels\n"
    )
    refused = charter("review", "--store", str(bench_store.root), "--queues", str(queues), "--port", "0")
    assert refused.returncode == 1
    message = refused.stdout + refused.stderr
    assert f"{queues}:7 [queues[1].sql]: charter sql is read-only: DELETE statements are refused" in message
    assert (
        f"{queues}:10 [queues[2].sql]: the query must return the columns pair_id and priority; "
        "missing pair_id" in message
    )
    assert f"{queues}:4" not in message  # the good queue is not blamed
    assert "review bench at" not in message
    assert not (bench_store.root / "review").exists()
