"""The located-YAML loader under hostile input: alias bombs, recursion, deep nesting, control bytes.

Every case must be refused in well under a second, with the file and line, before any walk
of the document (the line index, validation) could expand it.
"""

from __future__ import annotations

import time

import pytest

from tasks.core.errors import InputError
from tasks.core.yaml_source import MAX_ALIASED_VALUES, load_located_yaml
from tests.core.hostile import DEEP_BRACKETS, alias_bomb


def refused(text: str) -> tuple[InputError, float]:
    started = time.perf_counter()
    with pytest.raises(InputError) as raised:
        load_located_yaml(text, "hostile.yaml")
    return raised.value, time.perf_counter() - started


@pytest.mark.parametrize("levels", [7, 9])
def test_a_billion_laughs_is_refused_at_once_at_the_alias_that_overflows(levels: int) -> None:
    text = alias_bomb(levels)
    assert len(text.encode()) < 450
    error, seconds = refused(text)
    assert seconds < 1
    # 9**4 = 6,561 aliased values fit the budget; the fifth level (line 5) passes it.
    assert str(error) == f"hostile.yaml:5: aliases expand to more than {MAX_ALIASED_VALUES:,} values"


def test_an_alias_inside_its_own_anchor_is_refused() -> None:
    error, seconds = refused("name: x\nloop: &loop\n  again: *loop\n")
    assert seconds < 1
    assert str(error) == "hostile.yaml:3: alias *loop refers to a value that contains it"


def test_deep_flow_nesting_is_refused_at_its_line() -> None:
    error, seconds = refused("name: x\nprinciples: " + DEEP_BRACKETS)
    assert seconds < 1
    assert str(error) == "hostile.yaml:2: nested more than 100 levels deep"


def test_aliases_cannot_nest_a_document_deeper_than_the_limit() -> None:
    # Each anchor is 60 levels deep: fine alone, 120 levels once one holds an alias of the other.
    text = "a: &a " + "[" * 60 + "]" * 60 + "\nb: " + "[" * 60 + "*a" + "]" * 60 + "\n"
    error, _ = refused(text)
    assert str(error) == "hostile.yaml:2: nested more than 100 levels deep"


def test_ordinary_anchors_and_aliases_still_load_with_their_lines() -> None:
    document = load_located_yaml(
        "shared: &clinical [booking, rescheduling]\nfirst: *clinical\nsecond: *clinical\n", "ok.yaml"
    )
    assert document.data["second"] == ["booking", "rescheduling"]
    assert document.line_of(("second",)) == 3


def test_a_control_character_names_its_line_instead_of_a_traceback() -> None:
    error, _ = refused("name: x\nversion: '1'\ndescription: bell \x07 here\n")
    assert str(error) == "hostile.yaml:3: YAML syntax error: unprintable character U+0007"
