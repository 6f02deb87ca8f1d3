"""YAML loading that remembers where every value came from.

PyYAML's plain ``safe_load`` forgets line numbers and silently keeps the last of
two duplicate keys. People edit constitution files by hand, so charter composes
the node graph itself: every error can then name the line, and a duplicated key
(a common merge mistake) is an error instead of a silent overwrite.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from tasks.core.errors import InputError, Problem

Path_ = tuple[str | int, ...]
Model = TypeVar("Model", bound=BaseModel)


@dataclass
class LocatedDocument:
    """A parsed YAML document plus the 1-based line of every key and value in it."""

    data: Any
    lines: dict[Path_, int] = field(default_factory=dict)

    def line_of(self, path: Path_) -> int | None:
        """The line of ``path``, or of its nearest ancestor that has one."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(tuple(path[:end]))
            if line is not None:
                return line
        return None


def load_located_yaml(text: str, source: str) -> LocatedDocument:
    """Parse one YAML document, raising :class:`InputError` that names ``source`` and the line."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise InputError.single(source, "the file is empty", line=1)
        problems: list[Problem] = []
        lines: dict[Path_, int] = {}
        _index(node, (), lines, problems, source)
        if problems:
            raise InputError(problems)
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        detail = " ".join(part for part in (exc.context, exc.problem) if part)
        if (
            exc.context_mark is not None
            and exc.problem_mark is not None
            and exc.context_mark.line != mark.line
        ):
            detail += f" (the construct started on line {exc.context_mark.line + 1})"
        raise InputError.single(source, f"YAML syntax error: {detail}", line=line) from None
    finally:
        loader.dispose()
    return LocatedDocument(data=data, lines=lines)


def validate_located(model: type[Model], document: LocatedDocument, source: str) -> Model:
    """``model`` validated from ``document``; every problem names ``source``, its line and its key.

    Pydantic reports where a value sits (``train.dpo.steps``) but not on which line of the
    file people edit, so each of its errors is mapped back through the document's lines.
    """
    if not isinstance(document.data, dict):
        raise InputError.single(source, f"must be a mapping of {model.__name__} settings", line=1)
    try:
        return model.model_validate(document.data)
    except ValidationError as exc:
        problems = [
            Problem(
                path=source,
                line=document.line_of(tuple(error["loc"])),
                field=dotted_path(tuple(error["loc"])) or None,
                message=_validation_message(model, error),
            )
            for error in exc.errors()
        ]
        raise InputError(sorted(problems, key=lambda p: (p.line or 0, p.field or ""))) from None


def _validation_message(model: type[BaseModel], error: Any) -> str:
    if error["type"] == "extra_forbidden":
        known = _fields_at(model, tuple(error["loc"][:-1]))
        listing = f"; fields: {', '.join(known)}" if known else ""
        return f"unknown field {error['loc'][-1]!r}{listing}"
    if error["type"] == "missing":
        return "required field is missing"
    value = error["input"]
    return f"{error['msg']} (got {type(value).__name__} {value!r})"


def _fields_at(model: type[BaseModel], location: Path_) -> list[str]:
    """The field names of the (nested) model found at ``location``, if it is a model."""
    current: Any = model
    for part in location:
        if isinstance(part, int) or not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        field = current.model_fields.get(part)
        if field is None:
            return []
        current = _model_in(field.annotation)
    return list(current.model_fields) if isinstance(current, type) and issubclass(current, BaseModel) else []


def _model_in(annotation: Any) -> Any:
    """The BaseModel inside ``X | None``, or the annotation itself."""
    for candidate in getattr(annotation, "__args__", ()) or (annotation,):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return annotation


def dotted_path(location: Path_) -> str:
    """``("principles", 2, "rules", 0, "id")`` as ``principles[2].rules[0].id``."""
    text = ""
    for part in location:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _index(
    node: yaml.Node, path: Path_, lines: dict[Path_, int], problems: list[Problem], source: str
) -> None:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            key_line = key_node.start_mark.line + 1
            if key in seen:
                problems.append(
                    Problem(
                        path=source,
                        line=key_line,
                        field=dotted_path((*path, key)),
                        message=f"duplicate key {key!r} (first defined on line {seen[key]})",
                    )
                )
                continue
            seen[key] = key_line
            _index(value_node, (*path, key), lines, problems, source)
            # A key's own line is the better pointer for "unknown key" errors.
            lines[(*path, key)] = key_line
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _index(item, (*path, index), lines, problems, source)
