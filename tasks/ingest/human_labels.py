"""Importing human pairwise preference labels from annotation tools into the store.

Three formats: charter's own JSONL, Anthropic's hh-rlhf JSONL (``chosen``/``rejected``
transcripts) and Label Studio's JSON export of a pairwise-comparison project. Each
file is parsed completely before anything is written; every bad row is reported with
its file, row and field. By default one bad row means nothing is written; with
``skip_invalid`` the good rows are written and the bad ones go to a rejects file.
Label ids hash the pair, the annotator, the choice and the source file's content and
row, so importing the same file twice adds nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tasks.core.conversation import (
    messages_problem,
    orientation_free_vote,
    pair_id,
    parse_hh_transcript,
    response_id,
)
from tasks.core.errors import InputError, Problem
from tasks.core.hashing import content_id, file_sha256
from tasks.core.records import checked_jsonl
from tasks.ingest.prompt_sets import PromptRecord, prompt_record
from tasks.store.runs import RunContext
from tasks.store.store import Store

FORMATS = ("charter", "hh-rlhf", "label-studio")
# hh-rlhf conversations have no family of their own; without --family they are grouped under the format.
_DEFAULT_FAMILY = {"hh-rlhf": "hh-rlhf"}
CHOICES = ("a", "b", "tie")


@dataclass(frozen=True)
class LabelOrigin:
    """Where a label came from: enough to find the row again and to make re-imports idempotent."""

    source_format: str
    source_file: str
    source_sha256: str


@dataclass
class ParsedLabels:
    """A label file, parsed: rows ready for the store, plus every row that could not be used."""

    path: str
    source_sha256: str
    labels: list[dict[str, Any]] = field(default_factory=list)
    prompts: list[PromptRecord] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)

    def blocking_problems(self, skip_invalid: bool) -> list[Problem]:
        """The problems that stop an import: any at all, unless skipping leaves good rows to write."""
        return self.problems if self.problems and (not skip_invalid or not self.labels) else []


@dataclass(frozen=True)
class ImportResult:
    labels_read: int
    labels_added: int
    prompts_added: int
    rejected: int
    rejects_path: Path | None


def human_label_row(
    *,
    messages: list[dict[str, str]],
    response_a: str,
    response_b: str,
    choice: str,
    annotator: str,
    origin: LabelOrigin,
    source_row: int,
    confidence: float | None = None,
    comment: str | None = None,
) -> dict[str, Any]:
    """One ``human_labels`` row; ``choice`` is relative to the order of ``response_a``/``response_b``."""
    prompt = prompt_record(messages, prompt_set="labels", family=None).prompt_id
    a_id, b_id = response_id(response_a), response_id(response_b)
    pair = pair_id(prompt, a_id, b_id)
    preferred = {"a": a_id, "b": b_id, "tie": None}[choice]
    return {
        "label_id": content_id(
            "human_label",
            {
                "pair_id": pair,
                "annotator": annotator,
                "preferred": preferred,
                "source_sha256": origin.source_sha256,
                "source_row": source_row,
            },
        ),
        "pair_id": pair,
        "prompt_id": prompt,
        "response_a_id": a_id,
        "response_b_id": b_id,
        "response_a": response_a,
        "response_b": response_b,
        "choice": choice,
        "preferred_id": preferred,
        "vote": orientation_free_vote(preferred, a_id, b_id),
        "annotator": annotator,
        "confidence": confidence,
        "comment": comment,
        "source_format": origin.source_format,
        "source_file": origin.source_file,
        "source_sha256": origin.source_sha256,
        "source_row": source_row,
    }


def parse_label_file(
    path: str | Path, fmt: str, *, annotator: str | None = None, family: str | None = None
) -> ParsedLabels:
    """Parse a whole label file in ``fmt``; problems are collected, not raised."""
    if fmt not in FORMATS:
        raise InputError.single(str(path), f"unknown label format {fmt!r}; formats: {', '.join(FORMATS)}")
    source = str(path)
    if not Path(path).is_file():
        raise InputError.single(source, "file not found")
    origin = LabelOrigin(
        source_format=fmt, source_file=str(Path(path).resolve()), source_sha256=file_sha256(path)
    )
    parsed = ParsedLabels(path=source, source_sha256=origin.source_sha256)
    prompt_set = f"labels/{Path(path).stem}"
    parsers = {"charter": _charter_rows, "hh-rlhf": _hh_rlhf_rows, "label-studio": _label_studio_rows}
    for row_number, record, outcome in parsers[fmt](path, origin, annotator):
        if isinstance(outcome, list):
            parsed.problems.extend(outcome)
            parsed.rejected.append(
                {"row": row_number, "problems": [str(p) for p in outcome], "record": record}
            )
            continue
        label, messages, row_family = outcome
        parsed.labels.append(label)
        parsed.prompts.append(
            prompt_record(messages, prompt_set, row_family or family or _DEFAULT_FAMILY.get(fmt))
        )
    if not parsed.labels and not parsed.problems:
        parsed.problems.append(Problem(source, "the file has no labels"))
    return parsed


def import_labels(run: RunContext, parsed: ParsedLabels, *, skip_invalid: bool = False) -> ImportResult:
    """Write a parsed file's labels (and their prompts) to the run's store.

    Raises :class:`InputError`, writing nothing, if any row is bad and ``skip_invalid`` is off.
    """
    if parsed.blocking_problems(skip_invalid):
        raise InputError(parsed.problems)
    run.add_input(parsed.path)
    rejects_path = _write_rejects(run.store, parsed) if parsed.rejected else None
    prompts_added = run.append("prompts", [p.row() for p in parsed.prompts])
    labels_added = run.append("human_labels", parsed.labels)
    return ImportResult(
        labels_read=len(parsed.labels),
        labels_added=labels_added,
        prompts_added=prompts_added,
        rejected=len(parsed.rejected),
        rejects_path=rejects_path,
    )


def _write_rejects(store: Store, parsed: ParsedLabels) -> Path:
    directory = store.root / "rejects"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{Path(parsed.path).stem}.{parsed.source_sha256[:12]}.rejects.jsonl"
    partial = path.with_name(f".{path.name}.partial")
    with open(partial, "w", encoding="utf-8") as handle:
        for reject in parsed.rejected:
            handle.write(json.dumps(reject, ensure_ascii=False) + "\n")
    partial.replace(path)
    return path


# Each row parser yields (row number, original record, outcome), where the outcome is either
# the problems with that row or (label row, prompt messages, family or None).
RowOutcome = list[Problem] | tuple[dict[str, Any], list[dict[str, str]], str | None]


def _charter_rows(
    path: str | Path, origin: LabelOrigin, annotator: str | None
) -> Iterator[tuple[int, Any, RowOutcome]]:
    source = str(path)
    required = {"response_a": str, "response_b": str, "choice": str}
    optional = {
        "prompt": str,
        "messages": list,
        "annotator": str,
        "confidence": float,
        "comment": str,
        "family": str,
    }
    for line, item, problems in checked_jsonl(path, required=required, optional=optional):
        if item is None:
            yield line, None, problems
            continue
        has_prompt, has_messages = item.get("prompt") is not None, item.get("messages") is not None
        if has_prompt == has_messages:
            problems.append(Problem(source, "give exactly one of prompt or messages", line, "prompt"))
        if has_messages and isinstance(item["messages"], list):
            reason = messages_problem(item["messages"])
            if reason:
                problems.append(Problem(source, reason, line, "messages"))
        if isinstance(item.get("choice"), str) and item["choice"] not in CHOICES:
            problems.append(Problem(source, f"{item['choice']!r} is not one of a, b, tie", line, "choice"))
        row_annotator = item.get("annotator") or annotator
        if not row_annotator and "annotator" not in {p.field for p in problems}:
            problems.append(
                Problem(source, "required field is missing (or pass --annotator)", line, "annotator")
            )
        confidence = item.get("confidence")
        if (
            isinstance(confidence, int | float)
            and not isinstance(confidence, bool)
            and not 0 <= confidence <= 1
        ):
            problems.append(Problem(source, f"{confidence} is outside [0, 1]", line, "confidence"))
        if not problems and item["response_a"] == item["response_b"]:
            problems.append(Problem(source, "response_a and response_b are identical", line, "response_b"))
        if problems:
            yield line, item, problems
            continue
        messages = item.get("messages") or [{"role": "user", "content": item["prompt"]}]
        label = human_label_row(
            messages=messages,
            response_a=item["response_a"],
            response_b=item["response_b"],
            choice=item["choice"],
            annotator=row_annotator,
            origin=origin,
            source_row=line,
            confidence=None if confidence is None else float(confidence),
            comment=item.get("comment"),
        )
        yield line, item, (label, messages, item.get("family"))


def _hh_rlhf_rows(
    path: str | Path, origin: LabelOrigin, annotator: str | None
) -> Iterator[tuple[int, Any, RowOutcome]]:
    """hh-rlhf lines hold two full transcripts that differ only in the final assistant reply.

    The order the crowd worker saw is not in the data, so the pair is stored in a canonical
    order (by response id) and the choice points at the chosen reply.
    """
    source = str(path)
    for line, item, problems in checked_jsonl(path, required={"chosen": str, "rejected": str}, optional={}):
        if problems or item is None:
            yield line, item, problems
            continue
        try:
            chosen, rejected = parse_hh_transcript(item["chosen"]), parse_hh_transcript(item["rejected"])
        except ValueError as exc:
            yield line, item, [Problem(source, f"not an hh-rlhf transcript: {exc}", line, "chosen")]
            continue
        reason = _hh_pair_problem(chosen, rejected)
        if reason:
            yield line, item, [Problem(source, reason, line, "rejected")]
            continue
        messages = chosen[:-1]
        chosen_text, rejected_text = chosen[-1]["content"], rejected[-1]["content"]
        chosen_first = response_id(chosen_text) < response_id(rejected_text)
        label = human_label_row(
            messages=messages,
            response_a=chosen_text if chosen_first else rejected_text,
            response_b=rejected_text if chosen_first else chosen_text,
            choice="a" if chosen_first else "b",
            annotator=annotator or "hh-rlhf",
            origin=origin,
            source_row=line,
        )
        yield line, item, (label, messages, None)


def _hh_pair_problem(chosen: list[dict[str, str]], rejected: list[dict[str, str]]) -> str | None:
    for name, turns in (("chosen", chosen), ("rejected", rejected)):
        if len(turns) < 2 or turns[-1]["role"] != "assistant":
            return f"{name} must end with an Assistant reply after at least one Human turn"
    if chosen[:-1] != rejected[:-1]:
        return "chosen and rejected differ before their final Assistant reply"
    if chosen[-1]["content"] == rejected[-1]["content"]:
        return "chosen and rejected have the same final reply"
    return messages_problem(chosen[:-1])


# Label Studio's pairwise templates name the two texts text1/text2 (Pairwise Classification)
# or answer1/answer2 with a prompt (Human Preference collection for RLHF).
_LS_RESPONSE_KEYS = (("answer1", "answer2"), ("text1", "text2"), ("response_a", "response_b"))
_LS_PROMPT_KEYS = ("prompt", "instruction", "question", "text")
_LS_TIE_WORDS = {"tie", "equal", "same", "both", "neither"}


def _label_studio_rows(
    path: str | Path, origin: LabelOrigin, annotator: str | None
) -> Iterator[tuple[int, Any, RowOutcome]]:
    """One label per completed annotation of each task in a Label Studio JSON export."""
    source = str(path)
    try:
        tasks = json.loads(Path(path).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        line = getattr(exc, "lineno", None)
        yield 0, None, [Problem(source, f"not a Label Studio JSON export: {exc}", line)]
        return
    if not isinstance(tasks, list):
        yield 0, None, [Problem(source, "a Label Studio JSON export is a list of tasks")]
        return
    for number, task in enumerate(tasks, start=1):
        for outcome in _label_studio_task(task, number, source, origin, annotator):
            yield number, task, outcome


def _label_studio_task(
    task: Any, number: int, source: str, origin: LabelOrigin, annotator: str | None
) -> Iterator[RowOutcome]:
    def problem(field: str, message: str) -> list[Problem]:
        return [Problem(source, message, number, field, unit="task")]

    if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
        yield problem("data", "task must be an object with a data object")
        return
    data = task["data"]
    keys = next((pair for pair in _LS_RESPONSE_KEYS if pair[0] in data and pair[1] in data), None)
    if keys is None:
        options = " or ".join("/".join(pair) for pair in _LS_RESPONSE_KEYS)
        yield problem("data", f"no response texts: expected data keys {options}")
        return
    response_a, response_b = data[keys[0]], data[keys[1]]
    prompt_key = next((key for key in _LS_PROMPT_KEYS if key in data and key not in keys), None)
    if prompt_key is None:
        yield problem("data", f"no prompt: expected one of data keys {', '.join(_LS_PROMPT_KEYS)}")
        return
    for key in (prompt_key, *keys):
        if not isinstance(data[key], str) or not data[key].strip():
            yield problem(f"data.{key}", "must be a non-empty string")
            return
    if response_a == response_b:
        yield problem(f"data.{keys[1]}", "the two responses are identical")
        return
    annotations = [
        a for a in task.get("annotations") or [] if isinstance(a, dict) and not a.get("was_cancelled")
    ]
    if not annotations:
        yield problem("annotations", "no completed annotation")
        return
    messages = [{"role": "user", "content": data[prompt_key]}]
    for index, annotation in enumerate(annotations, start=1):
        choice = _label_studio_choice(annotation.get("result"))
        if choice is None:
            yield problem(
                f"annotations[{index}].result",
                "no pairwise selection ('selected': 'left' or 'right') or tie choice",
            )
            continue
        who = _label_studio_annotator(annotation.get("completed_by"), annotator)
        label = human_label_row(
            messages=messages,
            response_a=response_a,
            response_b=response_b,
            choice=choice,
            annotator=who,
            origin=origin,
            source_row=number,
        )
        yield label, messages, None


def _label_studio_choice(result: Any) -> str | None:
    for item in result if isinstance(result, list) else []:
        value = item.get("value") if isinstance(item, dict) else None
        if not isinstance(value, dict):
            continue
        selected = value.get("selected")
        if selected in ("left", "right"):
            return "a" if selected == "left" else "b"
        choices = value.get("choices")
        if isinstance(choices, list) and any(str(c).strip().lower() in _LS_TIE_WORDS for c in choices):
            return "tie"
    return None


def _label_studio_annotator(completed_by: Any, fallback: str | None) -> str:
    if isinstance(completed_by, dict):
        completed_by = completed_by.get("email") or completed_by.get("id")
    if completed_by is not None:
        return f"label-studio:{completed_by}"
    return fallback or "label-studio"
