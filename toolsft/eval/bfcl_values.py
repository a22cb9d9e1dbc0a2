"""BFCL's AST checker, one parameter value at a time (`toolsft.eval.bfcl_checker` has the rules
for whole calls and the list of deliberate differences from BFCL).

Mirrors `simple_function_checker`'s parameter part of BFCL's `ast_checker.py`: the type check
(an int passes for a float, nested list types), then strings standardized, lists element by
element, dicts one level deep, and lists of dicts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from toolsft.errors import ToolsftError

PYTHON_TYPES: dict[str, type] = {
    "string": str,
    "integer": int,
    "float": float,
    "boolean": bool,
    "array": list,
    "tuple": list,
    "dict": dict,
    "any": str,
}
"""BFCL's dialect -> the Python type a decoded value must have (exactly: bool is not int)."""

_ALIASES = {"number": "float", "object": "dict"}
_NESTED = ("array", "tuple")
_STRIP = re.compile(r"[ ,./\-_*^]")


class BfclDocError(ToolsftError, ValueError):
    """The function docs or the answers are malformed (a data bug, not a model error)."""


@dataclass(frozen=True)
class Verdict:
    """The outcome of checking one prediction; `error_type` uses BFCL's strings."""

    valid: bool
    error_type: str | None = None
    error: str = ""


OK = Verdict(True)


def fail(error_type: str, error: str) -> Verdict:
    return Verdict(False, error_type, error)


def standardize(text: str) -> str:
    """BFCL's string normal form: drop spaces and `,./-_*^`, lower-case, ' -> "."""
    return _STRIP.sub("", text).lower().replace("'", '"')


def _canonical(type_name: Any) -> Any:
    return _ALIASES.get(type_name, type_name) if isinstance(type_name, str) else type_name


def _python_type(type_name: Any, param: str) -> type:
    name = _canonical(type_name)
    if not isinstance(name, str) or name not in PYTHON_TYPES:
        raise BfclDocError(f"parameter {param!r}: unknown BFCL type {type_name!r}")
    return PYTHON_TYPES[name]


def check_param(
    param: str, value: Any, schema: Mapping[str, Any], acceptable: list[Any]
) -> Verdict:
    """Type, then value, of one emitted parameter (BFCL's Python branch)."""
    type_name = _canonical(schema.get("type"))
    expected = _python_type(type_name, param)
    nested: type | None = None
    items = schema.get("items")
    if type_name in _NESTED and isinstance(items, Mapping) and "type" in items:
        nested = _python_type(items["type"], param)
    if type_name == "float" and type(value) is int:
        try:
            value = float(value)  # BFCL lets Python widen int to float, and only that.
        except OverflowError:
            return fail("value_error:others", f"{param!r}: integer too large for a float.")
    verdict, is_variable = _type_check(param, value, acceptable, type_name, expected, nested)
    if not verdict.valid:
        return verdict
    if not is_variable:
        if expected is dict:
            return _dict_check(param, value, acceptable)
        if expected is list and nested is dict:
            return _list_dict_check(param, value, acceptable)
        if expected is str:
            return _string_check(param, value, acceptable)
        if expected is list:
            return _list_check(param, value, acceptable)
    if value not in acceptable:
        return fail(
            "value_error:others",
            f"Invalid value for parameter {param!r}: {value!r}. Expected one of {acceptable}.",
        )
    return OK


def _type_check(
    param: str,
    value: Any,
    acceptable: list[Any],
    type_name: str,
    expected: type[Any],
    nested: type[Any] | None,
) -> tuple[Verdict, bool]:
    """BFCL's `type_checker`: returns (verdict, is_variable).

    "Variable" is BFCL's word for a gold value whose type differs from the doc's (e.g. a
    string naming a variable): then a value of the gold value's type is accepted and compared
    by plain equality instead of the string/list/dict rules.
    """
    answer_type = next((type(a) for a in acceptable if a != ""), None)
    is_variable = answer_type is not None and answer_type is not expected
    nested_failed = False
    if type(value) is expected:
        if nested is None:
            return OK, is_variable
        for item in acceptable:
            # A non-list acceptable value (e.g. "") satisfies the nested check, as in BFCL.
            if not isinstance(item, list) or all(
                _type_check(param, v, item, nested.__name__, nested, None)[0].valid for v in value
            ):
                return OK, is_variable
        nested_failed = True
    if answer_type is not None and type(value) is answer_type:
        if nested_failed:
            return _nested_error(param, value, type_name, nested), True
        return OK, True
    return (
        fail(
            "type_error:simple",
            f"Incorrect type for parameter {param!r}. Expected type {type_name}, "
            f"got {type(value).__name__}. Parameter value: {value!r}.",
        ),
        False,
    )


def _nested_error(param: str, value: Any, type_name: str, nested: type | None) -> Verdict:
    inner = nested.__name__ if nested else "?"
    return fail(
        "type_error:nested",
        f"Nested type checking failed for parameter {param!r}. Expected outer type "
        f"{type_name} with inner type {inner}. Parameter value: {value!r}.",
    )


def _std(value: Any) -> Any:
    return standardize(value) if type(value) is str else value


def _string_check(param: str, value: str, acceptable: list[Any]) -> Verdict:
    if standardize(value) in [standardize(a) for a in acceptable if type(a) is str]:
        return OK
    return fail(
        "value_error:string",
        f"Invalid value for parameter {param!r}: {value!r}. "
        f"Expected one of {acceptable}. Case insensitive.",
    )


def _list_check(param: str, value: list[Any], acceptable: list[Any]) -> Verdict:
    """Element by element, top-level strings standardized; a "" answer reads as []."""
    got = [_std(v) for v in value]
    options = [[_std(v) for v in a] for a in acceptable if isinstance(a, list | str)]
    if got in options:
        return OK
    return fail(
        "value_error:list/tuple",
        f"Invalid value for parameter {param!r}: {value!r}. Expected one of {acceptable}.",
    )


def _dict_check(param: str, value: Any, acceptable: list[Any]) -> Verdict:
    """One level deep: every key known with an acceptable value, every needed key present.
    The verdict of the last candidate answer is reported, as BFCL does."""
    verdict = fail("dict_checker:unclear", f"No acceptable value for {param!r}.")
    if not isinstance(value, Mapping):
        return fail("value_error:dict_key", f"{param!r}: {value!r} is not an object.")
    for answer in acceptable:
        if answer == "":
            continue
        if not isinstance(answer, Mapping):
            verdict = fail("dict_checker:unclear", f"{param!r}: bad answer {answer!r}")
            continue
        verdict = _dict_against(value, answer)
        if verdict.valid:
            return OK
    return verdict


def _dict_against(value: Mapping[str, Any], answer: Mapping[str, list[Any]]) -> Verdict:
    error: Verdict | None = None
    for key, item in value.items():
        if key not in answer:
            error = Verdict(
                False, "value_error:dict_key", f"Unexpected dict key parameter: '{key}'."
            )
            break
        options = [_std(a) for a in answer[key]]
        if _std(item) not in options:
            error = fail(
                "value_error:dict_value",
                f"Invalid value for parameter {key!r}: {item!r}. Expected one of {options}.",
            )
            break
    # BFCL runs the missing-key pass even after a failure, and its error_type then wins.
    for key, options in answer.items():
        if key not in value and "" not in options:
            return fail("value_error:dict_key", f"Missing dict key parameter: '{key}'.")
    return error or OK


def _list_dict_check(param: str, value: list[Any], acceptable: list[Any]) -> Verdict:
    """A list of dicts against candidate lists, position by position."""
    verdict = fail("list_dict_checker:unclear", f"No acceptable value for {param!r}.")
    for answer in acceptable:
        if not isinstance(answer, list | str) or len(value) != len(answer):
            verdict = Verdict(
                False, "value_error:list_dict_count", "Wrong number of dictionaries in the list."
            )
            continue
        for item, item_answer in zip(value, answer, strict=True):
            verdict = _dict_check(param, item, [item_answer])
            if not verdict.valid:
                break
        else:
            return OK
    return verdict
