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
from toolsft.options import SEQUENCES, coerce, fields_of, flag_name, kind, number_text


def _default_text(f: dataclasses.Field[Any]) -> str:
    if f.default is not dataclasses.MISSING:
        d = f.default
    elif f.default_factory is not dataclasses.MISSING:
        d = f.default_factory()
    else:
        return ""
    if d is None:
        return str(f.metadata.get("unset") or "auto")
    if isinstance(d, bool):
        return "on" if d else "off"
    if isinstance(d, list | tuple):
        return ",".join(map(str, d)) or "none"
    return f"{d:g}" if isinstance(d, float) else str(d)


def _range_text(meta: Mapping[str, Any]) -> str:
    """The bounds as click writes a range: `x>0`, `0<=x<1`, `x<=9`."""
    low, high, above, below = (meta.get(k) for k in ("low", "high", "above", "below"))
    lower = ("<=", low) if low is not None else ("<", above) if above is not None else None
    upper = ("<=", high) if high is not None else ("<", below) if below is not None else None
    if lower and upper:
        return f"{number_text(lower[1])}{lower[0]}x{upper[0]}{number_text(upper[1])}"
    if lower:
        return f"x{lower[0].replace('<', '>')}{number_text(lower[1])}"
    if upper:
        return f"x{upper[0]}{number_text(upper[1])}"
    return ""


def _click_option(f: dataclasses.Field[Any]) -> Callable[[Any], Any]:
    """The field's option. Click parses the type only: bounds and choices are checked by
    `given` (`toolsft.options.coerce`), so a bad value reads the same from a file or the
    command line."""
    name = flag_name(f)
    text = f.metadata.get("help", "")
    k = kind(f)
    choices = f.metadata.get("choices")
    listed = "[" + "|".join(map(str, choices or ())) + "]"
    if choices and k in SEQUENCES:
        text = f"{text} Comma-separated, any of: {', '.join(map(str, choices))}."
    elif choices and len(listed) > 30:  # too long for the option's column
        text = f"{text} One of: {', '.join(map(str, choices))}."
    notes = "; ".join(n for n in (_default_text(f), _range_text(f.metadata)) if n)
    help_text = f"{text} [{notes}]" if notes else text
    if k == "bool":
        # a field renamed to its negative form (`cli="--no-prefix-grad"`) gets the same pair
        positive = "--" + name.removeprefix("--").removeprefix("no-")
        negative = "--no-" + positive[2:]
        return click.option(f"{positive}/{negative}", f.name, default=None, help=help_text)
    ptype = {"int": int, "float": float}.get(k, str)
    if k in SEQUENCES:
        metavar = "A,B,..."
    elif choices:
        metavar = listed if len(listed) <= 30 else "NAME"
    else:
        metavar = None
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
    against its bounds and choices (each item of a list)."""
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
