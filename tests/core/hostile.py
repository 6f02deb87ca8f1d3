"""Hostile inputs, built in code so each test states the size of what it throws at charter."""

from __future__ import annotations

from pathlib import Path

# Anchor names for the levels of a "billion laughs" document.
_LEVELS = "abcdefghij"


def alias_bomb(levels: int) -> str:
    """A YAML "billion laughs": each level lists the previous one 9 times, so 9**levels values."""
    lines = [f"{_LEVELS[0]}: &{_LEVELS[0]} [" + ", ".join(['"lol"'] * 9) + "]"]
    for level in range(1, levels):
        name, previous = _LEVELS[level], _LEVELS[level - 1]
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{previous}"] * 9) + "]")
    return "\n".join(lines) + "\n"


DEEP_BRACKETS = "[" * 100_000


def write(path: Path, content: str | bytes) -> Path:
    """``content`` written to ``path`` (text as UTF-8, bytes as they are); returns the path."""
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_bytes(content)
    return path


def folder(path: Path) -> Path:
    """A directory made where a file is expected."""
    path.mkdir()
    return path
