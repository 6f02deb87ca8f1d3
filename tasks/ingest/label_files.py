"""Which label files to import and how: the parameters of the ingest flow, and their preflight check."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, field_validator

from tasks.constitution.model import load_constitution
from tasks.core.errors import InputError, Problem
from tasks.ingest.human_labels import FORMATS, parse_label_file
from tasks.ingest.prompt_sets import load_prompt_set


class LabelFileSettings(BaseModel):
    """One label export to import."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str
    format: str = "charter"
    annotator: str | None = None
    family: str | None = None
    skip_invalid: bool = False

    @field_validator("format")
    @classmethod
    def _known_format(cls, fmt: str) -> str:
        # Checked here, not only when the file is parsed, so a config names the key that is wrong.
        if fmt not in FORMATS:
            raise ValueError(f"unknown label format {fmt!r}; formats: {', '.join(FORMATS)}")
        return fmt


def preflight(constitutions: list[str], prompt_sets: list[str], label_files: list[LabelFileSettings]) -> None:
    """Parse every input before any work starts; raise one :class:`InputError` listing all problems.

    A run that would fail on its third file fails here instead, before it writes the first.
    """
    problems: list[Problem] = []
    for path in constitutions:
        try:
            load_constitution(path)
        except InputError as exc:
            problems.extend(exc.problems)
    for path in prompt_sets:
        try:
            load_prompt_set(path)
        except InputError as exc:
            problems.extend(exc.problems)
    for spec in label_files:
        try:
            parsed = parse_label_file(spec.path, spec.format, annotator=spec.annotator, family=spec.family)
        except InputError as exc:
            problems.extend(exc.problems)
            continue
        problems.extend(parsed.blocking_problems(spec.skip_invalid))
    if problems:
        raise InputError(problems)
