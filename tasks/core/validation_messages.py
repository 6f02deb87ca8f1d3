"""Pydantic's validation errors in the words of the file a person edits.

Pydantic speaks of Python types ("Input should be a valid tuple", "a valid dictionary or
instance of ModelSettings"); the person reading the error wrote YAML. Each error type is
turned into what the key should hold in YAML terms (a whole number, true or false, a list,
a mapping with these keys) and what the file holds instead, so the message says how to fix
the value without knowing pydantic or Python.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

Location = tuple[str | int, ...]

# What a value of each failed type should be, as a person writing YAML says it.
_EXPECTED = {
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "finite_number": "a finite number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "text (quote it if it looks like a number, true/false or null)",
    "list_type": "a list, e.g. [a, b]",
    "tuple_type": "a list, e.g. [a, b]",
    "set_type": "a list, e.g. [a, b]",
    "dict_type": "a mapping of keys to values (key: value)",
    "none_required": "null",
}
# Bounds: (context key, how the bound reads).
_BOUNDS = {
    "greater_than": ("gt", "greater than {}"),
    "greater_than_equal": ("ge", "at least {}"),
    "less_than": ("lt", "less than {}"),
    "less_than_equal": ("le", "at most {}"),
}
_LONGEST_SHOWN = 80


def plain_message(model: type[BaseModel], error: Any) -> str:
    """What is wrong with the value at ``error["loc"]`` of ``model``'s input, and what it should be."""
    kind, location = error["type"], tuple(error["loc"])
    got = f" (got {_describe(error.get('input'))})"
    ctx = error.get("ctx") or {}
    if kind == "extra_forbidden":
        known = fields_at(model, location[:-1])
        listing = f"; fields: {', '.join(known)}" if known else ""
        return f"unknown field {location[-1]!r}{listing}"
    if kind == "missing":
        if location and isinstance(location[-1], int):
            return f"the list is too short: it needs at least {location[-1] + 1} items"
        return "required field is missing"
    if kind in ("value_error", "assertion_error"):
        return str(ctx.get("error", error["msg"]))
    if kind in _EXPECTED:
        return f"must be {_EXPECTED[kind]}{got}"
    if kind in _BOUNDS:
        key, wording = _BOUNDS[kind]
        return f"must be {wording.format(ctx[key])}{got}"
    if kind == "literal_error":
        return f"must be {ctx['expected']}{got}"
    if kind in ("model_type", "model_attributes_type"):
        known = fields_at(model, location)
        listing = f" with the keys {', '.join(known)}" if known else ""
        return f"must be a mapping{listing}{got}"
    if kind in ("too_short", "too_long"):
        bound = "at least" if kind == "too_short" else "at most"
        limit = ctx.get("min_length" if kind == "too_short" else "max_length")
        return f"must hold {bound} {limit} items (got {ctx.get('actual_length')})"
    # Any other type: pydantic's sentence, minus its Python framing.
    return f"{error['msg'].replace('Input should be', 'must be')}{got}"


def _describe(value: Any) -> str:
    """``value`` as YAML shows it: null, true, 3, the text 'x', a list [...], a mapping {...}."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        text = f"the text {value!r}"
    elif isinstance(value, list | tuple):
        text = f"a list {list(value)!r}"
    elif isinstance(value, dict):
        text = f"a mapping {value!r}"
    else:
        text = repr(value)
    return text if len(text) <= _LONGEST_SHOWN else text[: _LONGEST_SHOWN - 3] + "..."


def fields_at(model: type[BaseModel], location: Location) -> list[str]:
    """The field names of the (nested) model found at ``location``, if it is a model."""
    current: Any = model
    for part in location:
        if isinstance(part, int):
            continue  # an item of a list of models: _model_in already looked inside the list
        if not _is_model(current):
            return []
        field = current.model_fields.get(part)
        if field is None:
            return []
        current = _model_in(field.annotation)
    return list(current.model_fields) if _is_model(current) else []


def _is_model(candidate: Any) -> bool:
    return isinstance(candidate, type) and issubclass(candidate, BaseModel)


def _model_in(annotation: Any) -> Any:
    """The BaseModel inside ``X | None`` or ``list[X]``, or the annotation itself."""
    for candidate in getattr(annotation, "__args__", ()) or (annotation,):
        if _is_model(candidate):
            return candidate
    return annotation
