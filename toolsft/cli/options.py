"""Click options derived from a config dataclass: one declaration per option.

Every option defaults to None ("not given"), so a config file's value is kept unless the
command line sets it; `given` returns what the user typed, keyed by field name, and `labels`
says which option set each field, so an error names what the user typed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import click

from toolsft.errors import ToolsftError
from toolsft.options import SEQUENCES, coerce, fields_of, flag_name, kind


def _default_text(f: dataclasses.Field[Any]) -> str:
    if f.default is not dataclasses.MISSING:
        d = f.default
    elif f.default_factory is not dataclasses.MISSING:
        d = f.default_factory()
    else:
        return ""
    if d is None:
        return "auto"
    if isinstance(d, bool):
        return "on" if d else "off"
    if isinstance(d, list | tuple):
        return ",".join(map(str, d)) or "none"
    return f"{d:g}" if isinstance(d, float) else str(d)


def _click_option(f: dataclasses.Field[Any]) -> Callable[[Any], Any]:
    name = flag_name(f)
    text = f.metadata.get("help", "")
    k = kind(f)
    choices = f.metadata.get("choices")
    if choices and k in SEQUENCES:  # click checks one choice; `given` checks each item
        text = f"{text} Comma-separated, any of: {', '.join(map(str, choices))}."
    default = _default_text(f)
    help_text = f"{text} [{default}]" if default else text
    if k == "bool":
        # a field renamed to its negative form (`cli="--no-prefix-grad"`) gets the same pair
        positive = "--" + name.removeprefix("--").removeprefix("no-")
        negative = "--no-" + positive[2:]
        return click.option(f"{positive}/{negative}", f.name, default=None, help=help_text)
    ptype: Any
    if choices and k == "str":
        ptype = click.Choice([str(c) for c in choices])
    elif k in ("int", "float"):
        low, high = f.metadata.get("low"), f.metadata.get("high")
        rng = click.IntRange if k == "int" else click.FloatRange
        base = int if k == "int" else float
        ptype = rng(low, high) if low is not None or high is not None else base
    else:
        ptype = str
    metavar = "A,B,..." if k in SEQUENCES else None
    return click.option(name, f.name, type=ptype, default=None, metavar=metavar, help=help_text)


def dataclass_options(
    cls: type, *, exclude: Iterable[str] = (), only: Iterable[str] | None = None
) -> Callable[[Any], Any]:
    """A decorator adding one click option per field of `cls` (in declaration order)."""
    skip = set(exclude)
    keep = None if only is None else set(only)
    chosen = [
        f
        for f in fields_of(cls).values()
        if f.name not in skip and (keep is None or f.name in keep) and f.metadata.get("help")
    ]

    def decorate(fn: Any) -> Any:
        for f in reversed(chosen):  # click applies decorators bottom-up
            fn = _click_option(f)(fn)
        return fn

    return decorate


def given(
    cls: type, opts: Mapping[str, Any], error: type[ToolsftError] = ToolsftError
) -> dict[str, Any]:
    """The fields the command line set (not None), converted to the field's type and checked
    against its bounds: a list's items, and a NaN that click's float ranges let through."""
    fields = fields_of(cls)
    out = {}
    for name, value in opts.items():
        f = fields.get(name)
        if f is None or value is None:
            continue
        out[name] = coerce(f, value, file=None, where=flag_name(f), error=error)
    return out


def labels(cls: type) -> dict[str, str]:
    """Field -> the option that sets it (`learning_rate` -> `--lr`)."""
    return {name: flag_name(f) for name, f in fields_of(cls).items()}
