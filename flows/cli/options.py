"""Command-line options made from the settings models, so a default, a range or a help text is
written once: in the model's field.

A command names a settings model as a parameter (``settings: GenerateSettings``) and
:func:`settings_options` replaces that parameter, for Typer, by one option per field: the
field's name (``--max-tokens``), its type, its default and, as help, its ``description``.
When the command runs, the options are built back into the model, so its ranges and
validators check them, and the command receives the instance. A bad value exits with
``error: --temperature: ...`` naming the flag, like every other user error.

Typer reads a command's parameters from ``inspect.signature`` (which honours
``__signature__``) and its annotations from ``__annotations__``; the wrapper sets both.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

import typer
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from tasks.core.errors import CharterError
from tasks.core.validation_messages import plain_message


@dataclass(frozen=True)
class Flag:
    """How one field shows on the command line when its name and description alone will not do."""

    names: tuple[str, ...] = ()
    """Option declarations, e.g. ``("-n", "--n")`` or ``("--adaptive-kl/--fixed-kl",)``."""
    parameter: str | None = None
    """The command parameter's name where the field's would clash (``kind`` in ``export KIND``)."""
    help: str | None = None
    """Replaces the field's description (e.g. "Judge model" where the model is a judge)."""
    path: bool = False
    """The value is a file: the option takes a path, the model gets it as a string."""


@dataclass(frozen=True)
class Options:
    """The options of one settings model: all its fields, or ``only`` some, less ``skip``.

    With ``overrides``, every option defaults to unset and the command gets a dict of the values
    given (``charter merge`` lays them over a policy file) instead of a model. With ``prefix``
    (``judge``), every option and parameter name carries it (``--judge-backend``), so a command
    can take two models of one type (``charter eval``'s judge beside other backends).
    """

    model: type[BaseModel]
    only: tuple[str, ...] | None = None
    skip: tuple[str, ...] = ()
    flags: Mapping[str, Flag] = field(default_factory=dict)
    overrides: bool = False
    prefix: str = ""

    def fields(self) -> dict[str, FieldInfo]:
        names = self.only or tuple(self.model.model_fields)
        unknown = set(names) | set(self.flags) | set(self.skip)
        unknown -= set(self.model.model_fields)
        if unknown:
            raise TypeError(f"{self.model.__name__} has no field {', '.join(sorted(unknown))}")
        return {name: self.model.model_fields[name] for name in names if name not in self.skip}

    def parameter_name(self, name: str) -> str:
        base = self.flags.get(name, Flag()).parameter or name
        return f"{self.prefix}_{base}" if self.prefix else base

    def option_names(self, name: str) -> tuple[str, ...]:
        """The flag's declared names, prefixed; none: Typer names the option after the parameter."""
        if not self.prefix:
            return self.flags.get(name, Flag()).names
        return tuple(
            "/".join(part.replace("--", f"--{self.prefix}-", 1) for part in declared.split("/"))
            for declared in self.flags.get(name, Flag()).names
        )

    def parameter(self, name: str, info: FieldInfo) -> inspect.Parameter:
        flag = self.flags.get(name, Flag())
        kind, default, shown = _option_type(info.annotation, flag), info.get_default(), True
        if self.overrides:
            kind, default, shown = kind | None, None, f"{info.get_default()}, or the file's value"
        elif isinstance(default, (tuple, list)) and get_origin(kind) is list:
            default, shown = None, ", ".join(map(str, info.get_default()))
        option = typer.Option(
            *self.option_names(name), help=flag.help or info.description, show_default=shown
        )
        return inspect.Parameter(
            self.parameter_name(name),
            inspect.Parameter.KEYWORD_ONLY,
            default=default,
            annotation=Annotated[kind, option],
        )

    def flag_of(self, name: str) -> str:
        long = [n for n in self.option_names(name) if n.startswith("--")]
        long = long or [f"--{self.parameter_name(name).replace('_', '-')}"]
        return long[0].split("/")[0]

    def build(self, values: Mapping[str, Any]) -> Any:
        given = {name: _plain(values[self.parameter_name(name)]) for name in self.fields()}
        given = {name: value for name, value in given.items() if value is not None or not self._unset(name)}
        if self.overrides:
            return given
        try:
            return self.model(**given)
        except ValidationError as exc:
            raise CharterError(self.explain(exc)) from None

    def apply(self, base: BaseModel, overrides: Mapping[str, Any]) -> Any:
        """``base`` with the given option values laid over it, validated as one model."""
        try:
            return self.model.model_validate(base.model_dump() | dict(overrides))
        except ValidationError as exc:
            raise CharterError(self.explain(exc)) from None

    def explain(self, exc: ValidationError) -> str:
        """Each problem with the option that caused it: ``--pairs: unknown value 'x'; ...``."""
        lines = []
        for problem in exc.errors():
            where = str(problem["loc"][0]) if problem["loc"] else ""
            flag = self.flag_of(where) if where in self.model.model_fields else self.model.__name__
            if problem["type"] == "literal_error":
                allowed = problem["ctx"]["expected"].replace("'", "")
                lines.append(f"unknown {flag} {problem['input']!r}; choose from {allowed}")
            else:
                lines.append(f"{flag}: {plain_message(self.model, problem)}")
        return "\n".join(lines)

    def _unset(self, name: str) -> bool:
        """An option left at None means "the model's default" for overrides and collections."""
        return self.overrides or isinstance(self.model.model_fields[name].get_default(), (tuple, list))


def settings_options(**groups: Options) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Replace each named parameter of a command by the options of its settings model.

    An option two models share (``charter label``'s ``--seed`` seeds both the pair sample and
    the judge) is declared once and feeds both; their defaults must agree.
    """

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(command, eval_str=True)
        own = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in signature.parameters.values()]
        options: dict[str, inspect.Parameter] = {}
        introduced: dict[str, list[inspect.Parameter]] = {}  # each group's options, shared ones once
        for group_name, group in groups.items():
            introduced[group_name] = []
            for name, info in group.fields().items():
                option = group.parameter(name, info)
                if option.name not in options:
                    options[option.name] = option
                    introduced[group_name].append(option)
                elif options[option.name].default != option.default:
                    raise TypeError(f"option {option.name} of {group_name} has another default elsewhere")
        clash = {p.name for p in own if p.name not in groups} & set(options)
        if clash:
            raise TypeError(f"{command.__name__}: parameters and settings share {', '.join(sorted(clash))}")
        parameters = [o for p in own for o in (introduced[p.name] if p.name in groups else [p])]

        @functools.wraps(command)
        def run(**values: Any) -> Any:
            built = {name: group.build(values) for name, group in groups.items()}
            return command(**{k: v for k, v in values.items() if k not in options}, **built)

        run.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
        run.__annotations__ = {p.name: p.annotation for p in parameters}
        return run

    return decorate


def _option_type(annotation: Any, flag: Flag) -> Any:
    """The type Typer parses: a path for file fields, a repeatable option for variable-length
    tuples, and plain strings for enumerations and for a number-or-choice (``seed: 7`` or
    ``date``), which the model checks (naming the flag)."""
    optional = type(None) in get_args(annotation)
    if flag.path:
        return Path | None if optional else Path
    if get_origin(annotation) in (tuple, list) and (
        get_origin(annotation) is list or ... in get_args(annotation)
    ):
        return list[_option_type(get_args(annotation)[0], flag)]
    if get_origin(annotation) is Literal or any(
        get_origin(member) is Literal for member in get_args(annotation)
    ):
        return str
    return annotation


def _plain(value: Any) -> Any:
    """A parsed option as the model's field takes it (paths as strings)."""
    return str(value) if isinstance(value, Path) else value
