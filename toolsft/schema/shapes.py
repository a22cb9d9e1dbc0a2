"""Shape checks shared by the suite checks: each names the file, the JSON path and the value.

Generation indexes into whatever a suite holds; a string where a list belongs would be read
character by character and a number where text belongs would crash deep inside. These checks
turn every such mistake into one `SuiteError` at load time.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from toolsft.schema.errors import SuiteError

LANGS = ("zh", "en")
MAX_CODE_REPEAT = 1000
MAX_CODE_CLASS = 10_000
_MAXREPEAT = re._parser.MAXREPEAT  # type: ignore[attr-defined]
_CODE_TOKEN = re.compile(r"\[([^\]]+)\]\{(\d+)\}|(.)", re.DOTALL)


def check_keys(file: Path, where: str, obj: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    for key in obj:
        if key not in allowed:
            raise SuiteError(file, f"{where}.{key}", f"unknown key (allowed: {', '.join(allowed)})")


def mapping(file: Path, where: str, value: Any, what: str = "a mapping") -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise SuiteError(file, where, f"must be {what}", value)
    return value


def text(file: Path, where: str, value: Any) -> str:
    if not isinstance(value, str):
        raise SuiteError(file, where, "must be text (a string)", value)
    return value


def texts(file: Path, where: str, value: Any) -> list[str]:
    """A list of strings; a lone string is refused (it would be read as its characters)."""
    if not isinstance(value, list):
        raise SuiteError(file, where, "must be a list of strings", value)
    for i, item in enumerate(value):
        text(file, f"{where}[{i}]", item)
    return value


def number(file: Path, where: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SuiteError(file, where, "must be a number", value)
    return value


def integer(
    file: Path, where: str, value: Any, lo: int | None = None, hi: int | None = None
) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SuiteError(file, where, "must be an integer", value)
    if lo is not None and hi is not None and not lo <= value <= hi:
        raise SuiteError(file, where, f"must be an integer from {lo} to {hi}", value)
    return value


def boolean(file: Path, where: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise SuiteError(file, where, "must be true or false", value)
    return value


def pair(file: Path, where: str, value: Any, kind: str = "number") -> tuple[Any, Any]:
    """`[lo, hi]` with lo <= hi: numbers, integers or ISO dates."""
    if not isinstance(value, list) or len(value) != 2:
        raise SuiteError(file, where, f"must be [lo, hi] ({kind}s)", value)
    lo: Any  # dates or numbers, compared below
    hi: Any
    if kind == "date":
        lo, hi = (iso_date(file, f"{where}[{i}]", v) for i, v in enumerate(value))
    elif kind == "integer":
        lo, hi = (integer(file, f"{where}[{i}]", v) for i, v in enumerate(value))
    else:
        lo, hi = (number(file, f"{where}[{i}]", v) for i, v in enumerate(value))
    if lo > hi:
        raise SuiteError(file, where, "first is greater than last", value)
    return value[0], value[1]


def iso_date(file: Path, where: str, value: Any) -> dt.date:
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError as exc:
        raise SuiteError(file, where, "must be an ISO date (YYYY-MM-DD)", value) from exc


def per_lang(
    file: Path, where: str, value: Any, item: str = "texts", extra: tuple[str, ...] = ()
) -> Mapping[str, Any]:
    """`{zh: ..., en: ...}` where each language holds a string (`item="text"`) or a list."""
    value = mapping(file, where, value, "a mapping of languages (zh, en)")
    check_keys(file, where, value, LANGS + extra)
    for lang in LANGS:
        if lang in value:
            check = text if item == "text" else texts
            check(file, f"{where}.{lang}", value[lang])
    return value


def regex(file: Path, where: str, pattern: Any) -> re.Pattern[str]:
    """Compile a suite regex; refuse nested quantifiers, which can backtrack for ever."""
    text(file, where, pattern)
    try:
        compiled = re.compile(pattern)
        tree = re._parser.parse(pattern)  # type: ignore[attr-defined]
    except (re.error, RecursionError, OverflowError) as exc:
        raise SuiteError(file, where, f"bad regex: {exc}", pattern) from exc
    if _nested_repeat(tree, inside=False):
        raise SuiteError(
            file, where, "nested quantifiers like (a+)+ can take for ever to match", pattern
        )
    return compiled


def _nested_repeat(tree: Any, inside: bool) -> bool:
    """Whether a repeat of varying count sits inside an unbounded one, as in `(a+)+` or
    `(a{1,3})*`: the shape that backtracks exponentially. Fixed counts like `(\\d{4}-){3}`
    and possessive or atomic parts cannot backtrack that way."""
    for op, arg in tree:
        name = str(op)
        if name in ("MAX_REPEAT", "MIN_REPEAT"):
            lo, hi, sub = arg
            if lo != hi and inside:
                return True
            if _nested_repeat(sub, inside or (lo != hi and hi == _MAXREPEAT)):
                return True
        elif name in ("SUBPATTERN", "ASSERT", "ASSERT_NOT"):
            if _nested_repeat(arg[-1], inside):
                return True
        elif name == "BRANCH" and any(_nested_repeat(b, inside) for b in arg[1]):
            return True
    return False


def code_pattern(file: Path, where: str, pattern: Any) -> str:
    """A simple pattern (literals and `[class]{n}`) that the mock and the sampler can draw
    from, with bounded counts and classes: `[A-Z]{999999999}` would never finish."""
    text(file, where, pattern)
    total = 0
    for m in _CODE_TOKEN.finditer(pattern.strip("^$")):
        if m.group(3) is not None:
            total += 1
            continue
        n, size = int(m.group(2)), class_size(m.group(1))
        if n > MAX_CODE_REPEAT:
            raise SuiteError(file, where, f"a count above {MAX_CODE_REPEAT}", pattern)
        if size > MAX_CODE_CLASS or _has_surrogates(m.group(1)):
            raise SuiteError(
                file, where, f"a character class of over {MAX_CODE_CLASS} characters", pattern
            )
        total += n
    if total > MAX_CODE_REPEAT:
        raise SuiteError(file, where, f"makes strings longer than {MAX_CODE_REPEAT}", pattern)
    return pattern


def class_size(cls: str) -> int:
    """How many characters `[cls]` spells (as the executor expands it), without expanding."""
    size, i = 0, 0
    while i < len(cls):
        if i + 2 < len(cls) and cls[i + 1] == "-":
            size += max(0, ord(cls[i + 2]) - ord(cls[i]) + 1)
            i += 3
        else:
            size += 1
            i += 1
    return size


def _has_surrogates(cls: str) -> bool:
    i = 0
    while i < len(cls):
        if i + 2 < len(cls) and cls[i + 1] == "-":
            lo, hi = ord(cls[i]), ord(cls[i + 2])
            if lo <= 0xDFFF and hi >= 0xD800:
                return True
            i += 3
        else:
            i += 1
    return False


def fields_of(text_: str) -> list[str]:
    """The `{name}` / `{a.b}` references of an answer or mock template."""
    return re.findall(r"\{([\w.]+)\}", text_)
