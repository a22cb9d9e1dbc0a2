"""Config dataclasses as the one declaration of every option (the way TRL's `TrlParser` works).

A field is declared once, with `option(default, help, ...)`: its type, default and help text
live there. The CLI's options (`toolsft.cli.options.dataclass_options`) and YAML config
sections (`from_mapping`) are derived from the field, so the three cannot drift. YAML is read
by `load_yaml_file`, the one loader for every config and budget file.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from toolsft.errors import ToolsftError

MAX_CONFIG_BYTES = 1 << 20
"""A config is a page of YAML; anything larger is not one (and is not read whole)."""


def option(
    default: Any,
    help: str,
    *,
    cli: str | None = None,
    choices: tuple[Any, ...] | None = None,
    low: float | None = None,
    high: float | None = None,
    above: float | None = None,
    below: float | None = None,
    unset: str = "auto",
) -> Any:
    """A dataclass field with its help text and CLI shape.

    `cli` renames the command-line option (`--lr` for `learning_rate`); `choices`, `low` and
    `high` (inclusive), `above` and `below` (exclusive) bound the value on the command line and
    in YAML alike. `unset` is what a None default means in --help ("auto", "no limit").
    """
    meta = {
        "help": help,
        "cli": cli,
        "choices": choices,
        "low": low,
        "high": high,
        "above": above,
        "below": below,
        "unset": unset,
    }
    if isinstance(default, list | dict):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def fields_of(cls: type) -> dict[str, dataclasses.Field[Any]]:
    return {f.name: f for f in dataclasses.fields(cls)}


def flag_name(f: dataclasses.Field[Any]) -> str:
    """The command-line option of a field: `--max-length` for `max_length` unless renamed."""
    return f.metadata.get("cli") or "--" + f.name.replace("_", "-")


SEQUENCES = ("list", "ints", "floats")
"""Kinds written as a comma-separated list on the command line and a YAML list in a file."""


def kind(f: dataclasses.Field[Any]) -> str:
    """The field's base type: bool, int, float, str, or a list of str (list), of int (ints) or
    of float (floats).

    Annotations are strings here (`from __future__ import annotations`): `int | None` is int.
    """
    t = str(f.type).replace(" ", "")
    if t.startswith(("tuple[int", "list[int")):
        return "ints"
    if t.startswith(("tuple[float", "list[float")):
        return "floats"
    if t.startswith(("list", "tuple")):
        return "list"
    for name in ("bool", "int", "float", "str"):
        if t.startswith(name):
            return name
    raise TypeError(f"{f.name}: unsupported option type {f.type!r}")


def nullable(f: dataclasses.Field[Any]) -> bool:
    return "None" in str(f.type)


def coerce(
    f: dataclasses.Field[Any],
    value: Any,
    *,
    file: str | None,
    where: str,
    error: type[ToolsftError] = ToolsftError,
    as_given: bool = False,
) -> Any:
    """A YAML or command-line value checked against the field's type and bounds. An error
    shows the value as converted (`0.0` for a float field), or with `as_given` (a value set in
    Python) as it was."""
    if value is None:
        if nullable(f):
            return None
        raise error("must not be null", file=file, where=where, value=value)
    k = kind(f)
    try:
        out = _CONVERT[k](value)
    except (TypeError, ValueError, OverflowError):
        raise error(f"expected {_WANT[k]}", file=file, where=where, value=value) from None
    if k in SEQUENCES:  # a list's bounds hold for each item
        for item in out:
            _check_bounds(f, item, item, file=file, where=where, error=error)
        return tuple(out) if isinstance(f.default, tuple) else out
    _check_bounds(f, out, value if as_given else out, file=file, where=where, error=error)
    return out


def check_fields(
    obj: Any,
    sources: Mapping[str, tuple[str | None, str]] | None = None,
    error: type[ToolsftError] = ToolsftError,
) -> None:
    """Every option field of a config object against its type and bounds, as `coerce` checks
    a YAML value: a value set in Python is held to the same rules. `sources` maps a field to
    the (file, key or option) that set it."""
    for name, f in fields_of(type(obj)).items():
        if "help" in f.metadata:
            file, where = (sources or {}).get(name, (None, name))
            coerce(f, getattr(obj, name), file=file, where=where, error=error, as_given=True)


def _check_bounds(
    f: dataclasses.Field[Any],
    value: Any,
    shown: Any,
    *,
    file: str | None,
    where: str,
    error: type[ToolsftError],
) -> None:
    choices = f.metadata.get("choices")
    if choices and value not in choices:
        known = ", ".join(map(str, choices))
        raise error(f"must be one of {known}", file=file, where=where, value=shown)
    if isinstance(value, float) and not math.isfinite(value):
        raise error("must be a finite number", file=file, where=where, value=shown)
    if not within(f.metadata, value):
        raise error(f"must be {bounds_text(f.metadata)}", file=file, where=where, value=shown)


def within(meta: Mapping[str, Any], value: float) -> bool:
    """`value` inside the field's bounds (`low <= value`, `value < below`, ...)."""
    low, high, above, below = (meta.get(k) for k in ("low", "high", "above", "below"))
    return (
        (low is None or low <= value)
        and (high is None or value <= high)
        and (above is None or above < value)
        and (below is None or value < below)
    )


def bounds_text(meta: Mapping[str, Any]) -> str:
    """The bounds as an error says them: `> 0`, `>= 1`, `in [0, 1)`; "" without bounds."""
    low, high, above, below = (meta.get(k) for k in ("low", "high", "above", "below"))
    lo, hi = (low, "[") if low is not None else (above, "(")
    up, close = (high, "]") if high is not None else (below, ")")
    if lo is not None and up is not None:
        return f"in {hi}{number_text(lo)}, {number_text(up)}{close}"
    if lo is not None:
        return f"{'>=' if hi == '[' else '>'} {number_text(lo)}"
    if up is not None:
        return f"{'<=' if close == ']' else '<'} {number_text(up)}"
    return ""


def number_text(x: float) -> str:
    """1000000, not 1e+06; 0.5 as 0.5."""
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def _as_list(value: Any) -> list[str]:
    if isinstance(value, str):  # "a,b" on the command line, a lone string in YAML
        return [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise TypeError
    return list(value)


def _as_ints(value: Any) -> list[int]:
    if isinstance(value, str):
        return [int(v) for v in value.split(",") if v.strip()]
    if isinstance(value, int) and not isinstance(value, bool):
        return [value]
    if not isinstance(value, list | tuple):
        raise TypeError
    return [_as_int(v) for v in value]


def _as_floats(value: Any) -> list[float]:
    if isinstance(value, str):
        return [float(v) for v in value.split(",") if v.strip()]
    if isinstance(value, int | float) and not isinstance(value, bool):
        return [float(value)]
    if not isinstance(value, list | tuple):
        raise TypeError
    return [_as_float(v) for v in value]


def _as_bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError
    return value


def _as_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError
    return value


def _as_float(value: Any) -> float:
    # A quoted number ("2e-4": YAML 1.1 reads an exponent without a dot as a string) counts.
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise TypeError
    return float(value)


def _as_str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError
    return value


_CONVERT: dict[str, Callable[[Any], Any]] = {
    "list": _as_list,
    "ints": _as_ints,
    "floats": _as_floats,
    "bool": _as_bool,
    "int": _as_int,
    "float": _as_float,
    "str": _as_str,
}
_WANT = {
    "list": "a list of strings",
    "ints": "a list of integers",
    "floats": "a list of numbers",
    "bool": "true or false",
    "int": "an integer",
    "float": "a number",
    "str": "a string",
}


def from_mapping(
    cls: type,
    data: Mapping[str, Any],
    *,
    file: str | None,
    prefix: str = "",
    error: type[ToolsftError] = ToolsftError,
    command: str | None = None,
) -> dict[str, Any]:
    """A YAML section's keys and values checked against `cls`'s option fields (those declared
    with `option`); an unknown key gets a "did you mean", else `command` (whose --help lists
    the keys) or the keys themselves."""
    if not isinstance(data, Mapping):
        where = prefix.rstrip(".") or None
        raise error("must be a mapping of keys to values", file=file, where=where, value=data)
    fields = {n: f for n, f in fields_of(cls).items() if "help" in f.metadata}
    out = {}
    for key, value in data.items():
        where = f"{prefix}{key}"
        if key not in fields:
            # a key written as its option (`lr`, `max-rows`) is a near miss of its field
            as_flag = {flag_name(f).removeprefix("--"): n for n, f in fields.items()}
            meant = as_flag.get(str(key).replace("_", "-"))
            hint = (
                f" (did you mean {meant!r}?)" if meant else did_you_mean(str(key), fields, command)
            )
            raise error(f"unknown key{hint}", file=file, where=where)
        out[key] = coerce(fields[key], value, file=file, where=where, error=error)
    return out


def did_you_mean(
    key: str, known: Iterable[str] | Mapping[str, Any], command: str | None = None
) -> str:
    """ " (did you mean 'x'?)" for a near miss; else where the keys are listed: `command`'s
    help, or (without one) the keys themselves."""
    import difflib

    names = [str(k) for k in known]
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
    if close:
        return f" (did you mean {close[0]!r}?)"
    return f" ({command} lists them)" if command else f" (known: {', '.join(names)})"


def load_yaml_file(path: Path, error: type[ToolsftError] = ToolsftError) -> Any:
    """The parsed file, or one error line for a file that is missing, not a regular file (a
    FIFO would block), too large, not UTF-8 or not YAML."""
    import yaml

    file = str(path)
    try:
        if not path.is_file():
            what = "not found" if not path.exists() else "not a regular file"
            raise error(what, file=file)
        with path.open("rb") as f:
            raw = f.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise error(f"cannot read: {exc.strerror or exc}", file=file) from exc
    if len(raw) > MAX_CONFIG_BYTES:
        raise error(f"larger than {MAX_CONFIG_BYTES // 1024} KiB; not a config", file=file)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"not UTF-8 text (a bad byte at offset {exc.start})", file=file) from None
    try:
        return yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = None if mark is None else mark.line + 1
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise error(f"invalid YAML: {problem}", file=file, where=line) from None
    except RecursionError:
        raise error("invalid YAML: nested too deeply", file=file) from None
