"""``charter constitution validate`` and ``import`` on hostile files: a located line each, exit 1,
no traceback, and no output file written by an import that failed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import run_charter
from tests.core.hostile import DEEP_BRACKETS, alias_bomb, folder, write

# case -> (how to make the file under tmp_path, the problem printed after its path)
INVALID: dict[str, tuple[Callable[[Path], Path], str]] = {
    "alias-bomb-9-levels": (
        lambda tmp: write(tmp / "bomb.yaml", alias_bomb(9)),
        ":5: aliases expand to more than 10,000 values",
    ),
    "recursive-alias": (
        lambda tmp: write(tmp / "loop.yaml", "name: x\nprinciples: &p\n  - *p\n"),
        ":3: alias *p refers to a value that contains it",
    ),
    "nested-100000-deep": (
        lambda tmp: write(tmp / "deep.yaml", "name: x\nprinciples: " + DEEP_BRACKETS),
        ":2: nested more than 100 levels deep",
    ),
    "a-directory": (lambda tmp: folder(tmp / "constitution.yaml"), ": is a directory, not a file"),
    "binary": (
        lambda tmp: write(tmp / "c.yaml", b"name: x\n\x00\x01\x02"),
        ":2: binary data (a NUL byte), not UTF-8 text",
    ),
    "latin-1": (
        lambda tmp: write(tmp / "c.yaml", "name: x\nversion: '1'\ndescription: caf\xe9\n".encode("latin-1")),
        ":3: not UTF-8 text (invalid continuation byte at byte 17 of the line)",
    ),
    "control-character": (
        lambda tmp: write(tmp / "c.yaml", "name: x\ndescription: a\x1bb\n"),
        ":2: YAML syntax error: unprintable character U+001B",
    ),
}


@pytest.mark.parametrize("case", sorted(INVALID))
def test_validate_names_the_file_and_line_of_a_hostile_constitution(tmp_path: Path, case: str) -> None:
    make, problem = INVALID[case]
    path = make(tmp_path)
    result = run_charter("constitution", "validate", str(path))
    assert result.returncode == 1, result.stdout
    assert result.stderr == f"✗ {path}\n  {path}{problem}\n"


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (
            lambda tmp: write(tmp / "cai.json", '{"harmful": {\n"prompt": ' + DEEP_BRACKETS),
            ":2: invalid JSON",
        ),
        (lambda tmp: folder(tmp / "cai.json"), ": is a directory, not a file"),
        (lambda tmp: write(tmp / "cai.json", b"\xef\xbb\xbf[1, 2"), ":1: invalid JSON: Expecting"),
    ],
    ids=["nested-100000-deep", "a-directory", "truncated-after-a-bom"],
)
def test_import_refuses_unreadable_json_and_writes_nothing(
    tmp_path: Path, make: Callable[[Path], Path], problem: str
) -> None:
    path = make(tmp_path)
    output = tmp_path / "out.yaml"
    result = run_charter("constitution", "import", str(path), "--format", "anthropic", "-o", str(output))
    assert result.returncode == 1, result.stdout
    assert result.stderr.startswith(f"error: {path}{problem}") and result.stderr.count("\n") == 1
    assert not output.exists()
