"""Constitution files: the written principles that critique, revision and the AI judge read.

A constitution is a YAML file people edit and review in pull requests. This module
loads and validates one (errors name the file, the line and the field) and gives
it a content hash, ``constitution_id``, that changes exactly when the text a model
reads or a rule checks changes; titles, descriptions, key order and line wrapping
do not count, so a cosmetic edit keeps every label's lineage intact.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from tasks.core.errors import InputError, Problem, read_input_text
from tasks.core.hashing import content_id
from tasks.core.yaml_source import LocatedDocument, dotted_path, load_located_yaml

Slug = Annotated[str, StringConstraints(strict=True, pattern=r"^[a-z0-9][a-z0-9-]*$", max_length=80)]
Text = Annotated[str, StringConstraints(strict=True, strip_whitespace=True, min_length=1)]

# The fields whose text a model reads: changing any of them changes the principle's hash.
PROMPT_FIELDS = ("critique", "revision", "comparison")


def normalise_text(text: str) -> str:
    """Collapse whitespace so re-wrapping a folded YAML paragraph is not a change in meaning."""
    return " ".join(text.split())


class Rule(BaseModel):
    """A machine-checkable condition on a response, optionally triggered by the user's last turn."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Slug
    description: Text | None = None
    when: Text | None = None
    must_match: Text | None = None
    must_not_match: Text | None = None
    min_words: Annotated[int, Field(strict=True, ge=0)] | None = None
    max_words: Annotated[int, Field(strict=True, ge=1)] | None = None

    @model_validator(mode="after")
    def _check(self) -> Rule:
        if not any(
            value is not None
            for value in (self.must_match, self.must_not_match, self.min_words, self.max_words)
        ):
            raise ValueError("a rule needs at least one of must_match, must_not_match, min_words, max_words")
        if self.min_words is not None and self.max_words is not None and self.min_words > self.max_words:
            raise ValueError(f"min_words ({self.min_words}) is greater than max_words ({self.max_words})")
        return self

    def meaning(self) -> dict[str, Any]:
        """What the rule checks; the description is commentary and does not count."""
        return self.model_dump(exclude={"description"}, exclude_none=True)


def _regex_field_errors(rule: dict[str, Any]) -> list[tuple[str, str]]:
    errors = []
    for key in ("when", "must_match", "must_not_match"):
        pattern = rule.get(key)
        if isinstance(pattern, str):
            try:
                re.compile(pattern)
            except re.error as exc:
                errors.append((key, f"invalid regular expression: {exc}"))
    return errors


class Principle(BaseModel):
    """One principle: what to critique, how to revise, and what the judge compares."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Slug
    title: Text
    critique: Text | None = None
    revision: Text | None = None
    comparison: Text | None = None
    tags: tuple[Slug, ...] = ()
    rules: tuple[Rule, ...] = ()

    @model_validator(mode="after")
    def _check(self) -> Principle:
        if (self.critique is None) != (self.revision is None):
            missing = "revision" if self.revision is None else "critique"
            raise ValueError(f"{missing} is required when the other of critique/revision is given")
        if self.critique is None and self.comparison is None and not self.rules:
            raise ValueError("a principle needs critique+revision, a comparison, or rules")
        return self

    def applies_to(self, family: str | None) -> bool:
        """Untagged principles apply everywhere; tagged ones only to their prompt families."""
        return not self.tags or (family is not None and family in self.tags)

    def meaning(self) -> dict[str, Any]:
        """The meaning-bearing content, normalised: the input of the principle's hash."""
        return {
            "id": self.id,
            **{name: normalise_text(getattr(self, name)) for name in PROMPT_FIELDS if getattr(self, name)},
            "tags": sorted(self.tags),
            "rules": sorted((rule.meaning() for rule in self.rules), key=lambda rule: rule["id"]),
        }

    @property
    def principle_hash(self) -> str:
        return content_id("principle", self.meaning())


class Constitution(BaseModel):
    """A named, versioned list of principles."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Slug
    version: Text
    description: Text | None = None
    principles: tuple[Principle, ...] = Field(min_length=1)

    @property
    def constitution_id(self) -> str:
        """Content hash over the principles' meaning, independent of their order in the file."""
        return content_id("constitution", sorted(p.principle_hash for p in self.principles))

    def principle(self, principle_id: str) -> Principle:
        for principle in self.principles:
            if principle.id == principle_id:
                return principle
        raise KeyError(principle_id)


def parse_constitution(document: LocatedDocument, source: str) -> Constitution:
    """Validate a located YAML document as a constitution; every problem names its line and field."""
    data = document.data
    if not isinstance(data, dict):
        raise InputError.single(
            source, "a constitution must be a mapping with name, version and principles", 1
        )
    problems = _located_problems(data, document, source)
    try:
        constitution = Constitution.model_validate(data)
    except ValidationError as exc:
        problems.extend(_problems_from_validation(exc, document, source))
        constitution = None
    if problems:
        raise InputError(sorted(problems, key=lambda p: (p.line or 0, p.field or "")))
    assert constitution is not None
    return constitution


def _located_problems(data: dict[str, Any], document: LocatedDocument, source: str) -> list[Problem]:
    """Checks that need a position in the file: duplicate ids and invalid regular expressions."""
    problems: list[Problem] = []

    def problem(path: tuple[str | int, ...], message: str) -> None:
        problems.append(
            Problem(path=source, line=document.line_of(path), field=dotted_path(path), message=message)
        )

    principles = data.get("principles")
    principles = [p for p in principles if isinstance(p, dict)] if isinstance(principles, list) else []
    first_principle: dict[Any, int] = {}
    for p_index, principle in enumerate(principles):
        pid = principle.get("id")
        if pid in first_principle:
            problem(
                ("principles", p_index, "id"),
                f"duplicate principle id {pid!r} (also principles[{first_principle[pid]}])",
            )
        first_principle.setdefault(pid, p_index)
        rules = principle.get("rules")
        first_rule: dict[Any, int] = {}
        for r_index, rule in enumerate(rules if isinstance(rules, list) else []):
            if not isinstance(rule, dict):
                continue
            rid = rule.get("id")
            if rid in first_rule:
                problem(
                    ("principles", p_index, "rules", r_index, "id"),
                    f"duplicate rule id {rid!r} in this principle",
                )
            first_rule.setdefault(rid, r_index)
            for key, message in _regex_field_errors(rule):
                problem(("principles", p_index, "rules", r_index, key), message)
    return problems


def load_constitution(path: str | Path) -> Constitution:
    """Load and validate a constitution file; raises :class:`InputError` naming file, line and field."""
    source = str(path)
    return parse_constitution(load_located_yaml(read_input_text(path), source), source)


def _problems_from_validation(exc: ValidationError, document: LocatedDocument, source: str) -> list[Problem]:
    problems = []
    for error in exc.errors():
        # pydantic appends validator names (e.g. "function-after[...]") to the location; keep data keys only.
        location = tuple(part for part in error["loc"] if isinstance(part, int) or not _is_pydantic_tag(part))
        problems.append(
            Problem(
                path=source,
                line=document.line_of(location),
                field=dotted_path(location) or None,
                message=_friendly(error),
            )
        )
    return problems


def _is_pydantic_tag(part: str) -> bool:
    return "[" in part or part in {"function-after", "function-before"}


def _friendly(error: dict[str, Any]) -> str:
    kind = error["type"]
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        return "unknown field (check the spelling; see the constitution format in the README)"
    if kind == "string_pattern_mismatch":
        return f"{error['input']!r} is not a valid id: use lowercase letters, digits and hyphens"
    if kind == "string_type":
        return f"expected a string, got {type(error['input']).__name__} {error['input']!r} (quote it in YAML)"
    if kind == "value_error":
        return str(error["ctx"]["error"])
    return error["msg"]
