"""Importing constitutions published in other formats, and writing constitution YAML.

``anthropic``: the JSON files released with the Constitutional AI paper. A critique/revision
file maps principle names to ``{"prompt": [critique requests], "edit_request": revision
request}``; a comparison file is a JSON list of pairwise instructions ending in
"Options:". Either or both may be given; the result is a charter constitution that
validates (``load_constitution`` is run on the text before it is written).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from tasks.constitution.model import Constitution, parse_constitution
from tasks.core.errors import InputError
from tasks.core.jsonl import read_json
from tasks.core.yaml_source import load_located_yaml

IMPORT_FORMATS = ("anthropic",)

_CRITIQUE_WRAPPER = re.compile(r"^\s*CritiqueRequest:\s*|\s*Critique:\s*$")
_REVISION_WRAPPER = re.compile(r"^\s*RevisionRequest:\s*|\s*Revision:\s*$")
_OPTIONS_SUFFIX = re.compile(r"\s*Options:\s*$")


def slugify(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "principle"


def _title(text: str, limit: int = 60) -> str:
    first = re.split(r"(?<=[.?!])\s", text.strip(), maxsplit=1)[0]
    return first if len(first) <= limit else first[: limit - 1].rstrip() + "…"


def anthropic_principles(path: str | Path) -> list[dict[str, Any]]:
    """Principles from one Anthropic CAI JSON file (critique/revision or comparison)."""
    source = str(path)
    data = read_json(path)
    if isinstance(data, dict):
        return [_critique_principle(source, name, entry) for name, entry in data.items()]
    if isinstance(data, list) and all(isinstance(item, str) for item in data):
        return [
            {
                "id": f"comparison-{index:02d}",
                "title": _title(_OPTIONS_SUFFIX.sub("", item)),
                "comparison": _OPTIONS_SUFFIX.sub("", item).strip(),
            }
            for index, item in enumerate(data)
        ]
    raise InputError.single(
        source,
        "not an Anthropic CAI file: expected an object of critique/revision entries or a list of strings",
    )


def _critique_principle(source: str, name: str, entry: Any) -> dict[str, Any]:
    if not isinstance(entry, dict) or "prompt" not in entry or "edit_request" not in entry:
        raise InputError.single(source, f"entry {name!r} needs 'prompt' and 'edit_request'", field=name)
    requests = entry["prompt"] if isinstance(entry["prompt"], list) else [entry["prompt"]]
    if (
        not requests
        or not all(isinstance(r, str) for r in requests)
        or not isinstance(entry["edit_request"], str)
    ):
        raise InputError.single(
            source, "'prompt' must be a list of strings, 'edit_request' a string", field=name
        )
    # The paper's files hold one critique request per principle; extra ones are alternatives
    # of the same request, so the first is used.
    critique = _CRITIQUE_WRAPPER.sub("", requests[0]).strip()
    return {
        "id": slugify(name),
        "title": _title(critique),
        "critique": critique,
        "revision": _REVISION_WRAPPER.sub("", entry["edit_request"]).strip(),
    }


def import_anthropic(
    paths: list[str | Path], name: str, version: str, description: str | None
) -> tuple[str, Constitution]:
    """A constitution built from Anthropic CAI JSON files: its YAML text, validated by parsing it back."""
    principles: list[dict[str, Any]] = []
    for path in paths:
        principles.extend(anthropic_principles(path))
    document: dict[str, Any] = {"name": name, "version": version}
    if description:
        document["description"] = description
    document["principles"] = principles
    text = dump_constitution_yaml(document)
    return text, parse_constitution(load_located_yaml(text, "<imported>"), "<imported>")


class _Dumper(yaml.SafeDumper):
    pass


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = ">" if len(value) > 80 and "\n" not in value else ("|" if "\n" in value else None)
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def dump_constitution_yaml(document: dict[str, Any]) -> str:
    """YAML for people: keys in schema order, long texts as folded blocks."""
    return yaml.dump(document, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=88)
