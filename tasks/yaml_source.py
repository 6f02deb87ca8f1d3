"""YAML loading that remembers where every value came from.

PyYAML's plain ``safe_load`` forgets line numbers and silently keeps the last of
two duplicate keys. People edit constitution files by hand, so charter composes
the node graph itself: every error can then name the line, and a duplicated key
(a common merge mistake) is an error instead of a silent overwrite.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from tasks.errors import InputError, Problem

Path_ = tuple[str | int, ...]


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
