"""The one progress reporter: log lines at an interval off a terminal, a rich bar on one, the same figures."""

from __future__ import annotations

import io
import json
import logging
import re
from pathlib import Path

import pytest
from rich.console import Console

from tasks.core.progress import log_interval, progress
from tests.conftest import run_charter

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class FakeClock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Lines(logging.Handler):
    """The messages a logger was given, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def lines() -> tuple[logging.Logger, Lines]:
    logger = logging.getLogger("tests.core.progress")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    handler = Lines()
    logger.addHandler(handler)
    yield logger, handler
    logger.removeHandler(handler)


def test_log_lines_come_at_the_interval_with_count_rate_and_eta(lines) -> None:
    logger, seen = lines
    clock = FakeClock(100.0)
    with progress("training", total=800, unit="pairs", every_seconds=10, clock=clock, logger=logger) as bar:
        for now, pairs in ((104, 16), (110, 16), (115, 16), (125, 368), (130, 384)):
            clock.now = now
            bar.advance(pairs)
    assert seen.messages == [
        # 32 pairs in 10 s: 3.2 pairs/s; 768 left / 3.2 = 240 s.
        "training: 32/800 pairs (4%), 3.2 pairs/s, 0:00:10 elapsed, ETA 0:04:00",
        # 5 s after the last line: none at 115. At 125: 416 pairs in 25 s = 16.64/s; 384 / 16.64 = 23.1 s.
        "training: 416/800 pairs (52%), 16.6 pairs/s, 0:00:25 elapsed, ETA 0:00:23",
        # The end: 800 pairs in 30 s; nothing left, so no ETA.
        "training: 800/800 pairs (100%), 26.7 pairs/s, 0:00:30 elapsed (done)",
    ]
    figures = bar.figures()
    clock.now = 500  # the clock stopped when the work ended
    assert bar.figures() == figures
    assert figures.as_dict() == {
        "label": "training",
        "unit": "pairs",
        "done": 800,
        "total": 800,
        "seconds": 30.0,
        "rate": pytest.approx(800 / 30),
    }


def test_without_a_total_the_lines_count_and_rate_but_give_no_eta(lines) -> None:
    logger, seen = lines
    clock = FakeClock(0.0)
    with progress("reading labels.jsonl", unit="rows", every_seconds=10, clock=clock, logger=logger) as bar:
        clock.now = 20
        bar.advance(5000)
    assert seen.messages == [
        "reading labels.jsonl: 5000 rows, 250 rows/s, 0:00:20 elapsed",
        "reading labels.jsonl: 5000 rows, 250 rows/s, 0:00:20 elapsed (done)",
    ]


def test_quick_work_logs_nothing(lines) -> None:
    logger, seen = lines
    clock = FakeClock(0.0)
    with progress("reading labels.jsonl", unit="rows", every_seconds=10, clock=clock, logger=logger) as bar:
        clock.now = 9.9
        bar.advance(3)
    assert seen.messages == []
    assert bar.figures().line() == "reading labels.jsonl: 3 rows, 0.303 rows/s, 0:00:10 elapsed"


def test_the_interval_comes_from_the_environment_and_a_bad_one_is_named(monkeypatch, caplog) -> None:
    monkeypatch.setenv("CHARTER_PROGRESS_SECONDS", "2.5")
    assert log_interval() == 2.5
    monkeypatch.setenv("CHARTER_PROGRESS_SECONDS", "soon")
    with caplog.at_level(logging.WARNING, logger="tasks.core.progress"):
        assert log_interval() == 10
    assert caplog.messages == [
        "CHARTER_PROGRESS_SECONDS='soon' is not a number of seconds >= 0; logging progress every 10 s"
    ]


def test_work_that_fails_is_logged_as_stopped_and_the_error_goes_on(lines) -> None:
    logger, seen = lines
    clock = FakeClock(0.0)
    with (
        pytest.raises(RuntimeError, match="batch 3 failed"),
        progress("judge-batch", total=4, unit="batches", every_seconds=10, clock=clock, logger=logger) as bar,
    ):
        clock.now = 60
        bar.advance(2)
        raise RuntimeError("batch 3 failed")
    # 2 batches in 60 s = 0.0333/s; the other 2 take 60 s more.
    assert seen.messages[-1] == (
        "judge-batch: 2/4 batches (50%), 0.0333 batches/s, 0:01:00 elapsed, ETA 0:01:00 (stopped)"
    )


def terminal() -> Console:
    return Console(file=io.StringIO(), force_terminal=True, width=150)


def shown(console: Console) -> str:
    return ANSI.sub("", console.file.getvalue())


def test_on_a_terminal_a_rich_bar_shows_count_rate_and_eta(lines) -> None:
    logger, seen = lines
    console, clock = terminal(), FakeClock(0.0)
    with progress(
        "training", total=100, unit="pairs", every_seconds=10, clock=clock, console=console, logger=logger
    ) as bar:
        clock.now = 20
        bar.advance(40)
    # 40 pairs in 20 s: 2 pairs/s, and the 60 left take 30 s.
    assert "training" in shown(console)
    assert "40/100 pairs (40%)  2 pairs/s, 0:00:20 elapsed, ETA 0:00:30" in shown(console)
    # No start or interval lines on a terminal (the bar shows them); the end is logged for the record.
    assert seen.messages == ["training: 40/100 pairs (40%), 2 pairs/s, 0:00:20 elapsed, ETA 0:00:30 (done)"]


def test_work_inside_work_adds_a_row_to_the_live_display_already_shown(lines) -> None:
    logger, _ = lines
    outer_console, inner_console, clock = terminal(), terminal(), FakeClock(0.0)
    # Two live displays would fight over one terminal: the inner bar joins the outer's display.
    with (
        progress(
            "critique-batch", total=2, unit="batches", clock=clock, console=outer_console, logger=logger
        ),
        progress(
            "critique rounds", total=8, unit="rounds", clock=clock, console=inner_console, logger=logger
        ) as b,
    ):
        clock.now = 4
        b.advance(8)
    frames = shown(outer_console).split("\r")
    assert any("critique-batch" in frame and "8/8 rounds (100%)  2 rounds/s" in frame for frame in frames)
    assert shown(inner_console) == ""


class FakeTerminalStream(io.StringIO):
    def isatty(self) -> bool:
        return True


def prefect_console_handler(stream: io.StringIO) -> logging.Handler:
    from prefect.logging.handlers import PrefectConsoleHandler

    return PrefectConsoleHandler(stream=stream)


@pytest.mark.parametrize("make_handler", [logging.StreamHandler, prefect_console_handler])
def test_log_handlers_on_the_terminal_print_above_the_bar_then_get_their_stream_back(
    lines, make_handler
) -> None:
    logger, _ = lines
    stream = FakeTerminalStream()
    handler = make_handler(stream)
    root = logging.getLogger()
    root.addHandler(handler)
    other = logging.getLogger("tests.core.engine")
    try:
        console = terminal()
        with progress("generate-batch", total=3, unit="batches", console=console, logger=logger):
            other.warning("engine warming up")
        other.warning("after the bar")
    finally:
        root.removeHandler(handler)
    # During the bar the line went through the bar's console (printed above it), not into it.
    assert "engine warming up" in shown(console)
    assert ANSI.sub("", stream.getvalue()) == "after the bar\n"


@pytest.mark.integration
def test_a_large_label_import_logs_progress_when_output_is_not_a_terminal(tmp_path: Path) -> None:
    labels = tmp_path / "labels-5000.jsonl"
    rows = (
        {
            "prompt": f"Can I book visit {i}?",
            "response_a": f"Yes, slot {i}.",
            "response_b": "No.",
            "choice": "a",
        }
        for i in range(5000)
    )
    labels.write_text("".join(json.dumps({**r, "annotator": "ana"}) + "\n" for r in rows), encoding="utf-8")
    # A line every 10 ms: reading 5,000 rows takes longer, so there are lines before the last.
    env = {"CHARTER_PROGRESS_SECONDS": "0.01"}
    result = run_charter("import-labels", str(labels), "--store", str(tmp_path / "store"), env=env)
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    # Read twice, with progress lines both times: by the check before Prefect starts (this module's
    # logger, plain lines on stderr) and by the flow's import task (Prefect's task run logger).
    task_line = re.compile(r"Task run 'import-label-file[^']*' - (reading labels-5000\.jsonl: .*)")
    for reported in (
        [line for line in output.splitlines() if line.startswith("reading labels-5000.jsonl: ")],
        [match.group(1) for match in task_line.finditer(output)],
    ):
        assert len(reported) >= 2, output
        counts = [
            int(re.match(r"reading labels-5000\.jsonl: (\d+) rows, \d+ rows/s, ", line)[1])
            for line in reported
        ]
        assert counts == sorted(counts) and 0 < counts[0] < 5000, output
        assert re.fullmatch(
            r"reading labels-5000\.jsonl: 5000 rows, \d+ rows/s, 0:00:\d\d elapsed \(done\)", reported[-1]
        )


def test_reward_model_training_logs_its_pairs_as_it_goes(monkeypatch, caplog) -> None:
    from tasks.train.reward_model import train_reward_model
    from tasks.train.settings import RewardModelSettings

    monkeypatch.setenv("CHARTER_PROGRESS_SECONDS", "0")  # a line at every step
    records = [
        {
            "prompt": [{"role": "user", "content": f"Can I book visit {i}?"}],
            "chosen": f"Yes, visit {i} is booked.",
            "rejected": "Take two aspirin.",
            "target": 1.0,
            "weight": 1.0,
        }
        for i in range(6)
    ]
    config = RewardModelSettings(backbone="minilm", batch_size=4, epochs=2, max_length=32)
    with caplog.at_level(logging.INFO, logger="tasks.core.progress"):
        train_reward_model(records, config, eval_records=[])
    lines = [r.getMessage() for r in caplog.records if r.name == "tasks.core.progress"]
    # 6 pairs a epoch in batches of 4 and 2 (in a seeded order): after each step, then the last line.
    counts = [int(re.match(r"reward model training: (\d+)/12 pairs", line)[1]) for line in lines]
    steps = [after - before for before, after in zip([0, *counts[:3]], counts[:4], strict=True)]
    epochs = (sorted(steps[:2]), sorted(steps[2:]), counts[1], counts[3:])
    assert epochs == ([2, 4], [2, 4], 6, [12, 12]), lines
    assert re.search(r"\d+/12 pairs \(\d+%\), [\d.]+ pairs/s, 0:00:\d\d elapsed, ETA 0:00:\d\d$", lines[0])
    assert lines[-1].endswith("(done)")
