"""Requests built from named options: one definition serves the command line and the batch file.

A request is a frozen dataclass whose fields are the options of one command (`datasets import`,
`models add`). The command line builds it from its parsed arguments (`from_namespace`); a batch file's
entry builds it from a TOML table (`from_options`), with every problem reported: an unknown key (with
the closest known one), a value of the wrong type, a value not among a field's choices. A field's
`metadata` may name `choices`; its annotation gives its type (str, int, float, bool, Path, a tuple of
str or float, each optionally `| None`).
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from pathlib import Path
from types import NoneType, UnionType

#: `option(REQUIRED, ...)`: a field without a default
REQUIRED = dataclasses.MISSING


def option(default=None, *, choices: tuple[str, ...] | None = None, help: str = ""):
    """A request field: its default, the values it accepts (`choices`) and a help line."""
    return dataclasses.field(default=default, metadata={"choices": choices, "help": help})


def from_namespace(cls, namespace) -> object:
    """The request from a parsed command line (argparse.Namespace with one attribute per field)."""
    values = {}
    for f in dataclasses.fields(cls):
        value = getattr(namespace, f.name, f.default)
        values[f.name] = tuple(value) if isinstance(value, list) else value
    return cls(**values)


def from_options(
    cls, options: dict, where: str, *, positional: tuple[str, ...] = ()
) -> tuple[object | None, list[str]]:
    """(request, []) from a TOML table, or (None, problems) naming every key that is unknown or has a
    wrong value; `where` starts each problem (e.g. "[[import]] 'lab'")."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    problems, values = [], {}
    for key, value in options.items():
        f = fields.get(key)
        if f is None:
            close = difflib.get_close_matches(key, sorted(fields), n=1)
            problems.append(
                f"{where}: unknown option `{key}`"
                + (f" (did you mean `{close[0]}`?)" if close else "")
                + f"; its keys are: {', '.join(k for k in fields if k not in positional)}"
            )
            continue
        try:
            values[key] = _convert(value, hints[key], f.metadata.get("choices"))
        except ValueError as exc:
            problems.append(f"{where}: `{key}` {exc}")
    missing = [
        name
        for name, f in fields.items()
        if name not in options and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    problems += [f"{where}: `{name}` is required" for name in missing]
    return (None, problems) if problems else (cls(**values), [])


def _convert(value, hint, choices):
    """The value as the field's type (ValueError saying what was wrong)."""
    kind, optional = _kind(hint)
    if value is None and optional:
        return None
    if typing.get_origin(kind) is tuple:
        item = typing.get_args(kind)[0]
        items = value if isinstance(value, list) else [value]
        return tuple(_scalar(v, item, choices) for v in items)
    return _scalar(value, kind, choices)


def _kind(hint) -> tuple[object, bool]:
    """(the type, whether None is allowed) of a field annotation `T` or `T | None`."""
    if isinstance(hint, UnionType) or typing.get_origin(hint) is typing.Union:
        kinds = [k for k in typing.get_args(hint) if k is not NoneType]
        return kinds[0], True
    return hint, False


def _scalar(value, kind, choices):
    if kind is bool:
        if not isinstance(value, bool):
            raise ValueError(f"must be true or false, not {value!r}")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"must be an integer, not {value!r}")
        return value
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"must be a number, not {value!r}")
        return float(value)
    if isinstance(value, dict | list | bool):
        raise ValueError(f"must be a single value, not {value!r}")
    text = str(value)  # a number where text is expected reads as on the command line (variation = 6)
    if choices and text not in choices:
        raise ValueError(f"is {text!r}, not one of {', '.join(choices)}")
    return Path(text) if kind is Path else text


def add_arguments(
    parser,
    cls,
    *,
    positional: tuple[str, ...] = (),
    exclusive: tuple[str, ...] = (),
    metavars: dict[str, str] | None = None,
) -> None:
    """Add one command-line option per field of the request `cls` to an argparse parser: `--field-name`
    with the field's type, choices and help (a bool is a flag, a tuple takes one or more values); the
    fields in `positional` are positional arguments; those in `exclusive` form a required group of which
    exactly one is given."""
    hints = typing.get_type_hints(cls)
    group = parser.add_mutually_exclusive_group(required=True) if exclusive else None
    for f in dataclasses.fields(cls):
        kwargs: dict = {"help": f.metadata.get("help") or None}
        if f.name in positional:
            parser.add_argument(f.name, **kwargs)
            continue
        kind, _ = _kind(hints[f.name])
        if kind is bool:
            kwargs["action"] = "store_true"
        else:
            if typing.get_origin(kind) is tuple:
                kwargs["nargs"] = "+"
                kind = typing.get_args(kind)[0]
            kwargs["type"] = kind
            if f.metadata.get("choices"):
                kwargs["choices"] = f.metadata["choices"]
            if (metavars or {}).get(f.name):
                kwargs["metavar"] = metavars[f.name]
            if f.default is dataclasses.MISSING:
                kwargs["required"] = True
        target = group if f.name in exclusive else parser
        target.add_argument("--" + f.name.replace("_", "-"), **kwargs)
