"""YAML loading that remembers where every value came from.

PyYAML's plain ``safe_load`` forgets line numbers and silently keeps the last of
two duplicate keys. People edit constitution files by hand, so charter composes
the node graph itself: every error can then name the line, and a duplicated key
(a common merge mistake) is an error instead of a silent overwrite.

Anchors and aliases (``&tags`` ... ``*tags``) stay allowed: sharing one tag list or one
model block between stages is a fair use of them in files people write by hand. What is
bounded is what they can cost: PyYAML shares an aliased node rather than copying it, so a
441-byte "billion laughs" file composes quickly and then explodes in every walk of the
result (the line index, validation). The loader counts, while composing, how many values
the aliases expand to and how deep the document nests once expanded, and refuses a file
past :data:`MAX_ALIASED_VALUES` or :data:`~tasks.core.errors.MAX_NESTING_DEPTH` at the
line where it goes too far, before any walk starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NoReturn, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from tasks.core.errors import MAX_NESTING_DEPTH, InputError, Problem
from tasks.core.validation_messages import fields_at, plain_message

Path_ = tuple[str | int, ...]
Model = TypeVar("Model", bound=BaseModel)

# Values that aliases may add to a document. The shipped constitution has about 500 values in
# all; reusing a tag list in every principle adds tens. A billion-laughs file adds 10^9.
MAX_ALIASED_VALUES = 10_000


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
    try:
        loader = _BoundedLoader(text, source)
    except yaml.reader.ReaderError as exc:
        # Raised while PyYAML checks the whole text for unprintable characters, before any mark exists.
        line = text.count("\n", 0, exc.position) + 1
        message = f"YAML syntax error: unprintable character U+{exc.character:04X}"
        raise InputError.single(source, message, line=line) from None
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


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing while it composes what would be too costly to walk.

    ``compose_node`` is where each alias is met once, before it is expanded anywhere, and
    where each collection is opened, so both bounds are checked there, in time linear in
    the file. Each composed node's expanded size and height are kept: an alias costs what
    its anchor expands to, and an alias met before its anchor's node is complete refers to
    a node that contains it, which no walk could finish.
    """

    def __init__(self, text: str, source: str) -> None:
        super().__init__(text)
        self._source = source
        self._open_collections = 0
        self._aliased_values = 0
        # id of each composed node -> (values in its expansion, collection levels in it).
        self._extent: dict[int, tuple[int, int]] = {}

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        event = self.peek_event()
        line = event.start_mark.line + 1
        if isinstance(event, yaml.AliasEvent):
            node = super().compose_node(parent, index)
            extent = self._extent.get(id(node))
            if extent is None:
                self._refuse(f"alias *{event.anchor} refers to a value that contains it", line)
            values, levels = extent
            self._aliased_values += values
            if self._aliased_values > MAX_ALIASED_VALUES:
                self._refuse(f"aliases expand to more than {MAX_ALIASED_VALUES:,} values", line)
            self._check_depth(self._open_collections + levels, line)
            return node
        is_collection = isinstance(event, yaml.CollectionStartEvent)
        if is_collection:
            self._open_collections += 1
            self._check_depth(self._open_collections, line)
        node = super().compose_node(parent, index)
        self._open_collections -= is_collection
        children = [self._extent[id(child)] for child in _children(node)]
        self._extent[id(node)] = (
            1 + sum(values for values, _ in children),
            is_collection + max((levels for _, levels in children), default=0),
        )
        return node

    def _check_depth(self, levels: int, line: int) -> None:
        if levels > MAX_NESTING_DEPTH:
            self._refuse(f"nested more than {MAX_NESTING_DEPTH} levels deep", line)

    def _refuse(self, message: str, line: int) -> NoReturn:
        raise InputError.single(self._source, message, line=line)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return node.value if isinstance(node, yaml.SequenceNode) else []


def validate_located(model: type[Model], document: LocatedDocument, source: str) -> Model:
    """``model`` validated from ``document``; every problem names ``source``, its line and its key.

    Pydantic reports where a value sits (``train.dpo.steps``) but not on which line of the
    file people edit, so each of its errors is mapped back through the document's lines, and
    told in the file's terms (:mod:`tasks.core.validation_messages`).
    """
    if not isinstance(document.data, dict):
        keys = ", ".join(fields_at(model, ()))
        raise InputError.single(source, f"must be a mapping (key: value lines) of the keys {keys}", line=1)
    try:
        return model.model_validate(document.data)
    except ValidationError as exc:
        problems = [
            Problem(
                path=source,
                line=document.line_of(tuple(error["loc"])),
                field=dotted_path(tuple(error["loc"])) or None,
                message=plain_message(model, error),
            )
            for error in exc.errors()
        ]
        raise InputError(sorted(problems, key=lambda p: (p.line or 0, p.field or ""))) from None


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
