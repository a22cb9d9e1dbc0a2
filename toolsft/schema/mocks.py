"""Checks of a tool's `result` and `answer` blocks: every mock expression is well formed and
bounded, and every `{name}` an answer says is a field or a parameter.

The executor evaluates these expressions for every call of generation and evaluation; a bad
one would crash a run far from its cause, and an unbounded one (`{list: {n: [1, 1e9]}}`,
`{code: "[A-Z]{999999999}"}`) would never finish. Mock text is filled by plain
substitution of `{name}` (never `str.format`), and only names the tool can know are allowed.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from toolsft.schema import params, shapes
from toolsft.schema.errors import SuiteError
from toolsft.schema.executor import MOCK_KINDS
from toolsft.types import ToolSpec

MAX_LIST_ITEMS = 100
RESULT_KEYS = ("schema", "mock", "error")
ANSWER_KEYS = ("facts", "display", "error", *shapes.LANGS)
_EXTRA = {"arg": ("default",), "number": ("decimals",)}


def check_result(file: Path, spec: ToolSpec, result: Any, known: set[str]) -> None:
    """`known`: the tool's parameter names (top level), which `arg`/`template` may name."""
    result = shapes.mapping(file, "$.result", result)
    shapes.check_keys(file, "$.result", result, RESULT_KEYS)
    mock = shapes.mapping(file, "$.result.mock", result.get("mock"), "a mapping of result fields")
    schema = result.get("schema")
    if schema is not None:
        params.check_json_schema(file, "$.result.schema", schema)
        params.check_result_schema(
            file, "$.result.schema", shapes.mapping(file, "$.result.schema", schema)
        )
    check_fields(file, "$.result.mock", mock, set(known))
    err = result.get("error")
    if err is not None:
        where = "$.result.error"
        if not isinstance(err, Mapping) or not isinstance(err.get("result"), Mapping):
            raise SuiteError(file, where, "is {rate: 0.1, result: {error: ..., message: ...}}", err)
        shapes.check_keys(file, where, err, ("rate", "result"))
        rate = shapes.number(file, f"{where}.rate", err.get("rate", 0))
        if not 0 <= rate <= 1:
            raise SuiteError(file, f"{where}.rate", "must be a share from 0 to 1", rate)
        if "error" not in err["result"]:
            raise SuiteError(file, f"{where}.result", "needs an `error` field", dict(err["result"]))
        check_template_refs(file, f"{where}.result", err["result"], set(known))


def check_fields(file: Path, where: str, mock: Mapping[str, Any], known: set[str]) -> None:
    """Each field in order; a `template` may name the arguments and the fields before it."""
    done = set(known)
    for key, expr in mock.items():
        check_expr(file, f"{where}.{key}", expr, done)
        done.add(str(key))


def check_expr(file: Path, where: str, expr: Any, known: set[str]) -> None:
    if not isinstance(expr, Mapping) or not expr:
        return  # a literal value
    kind = next((k for k in expr if k in MOCK_KINDS), None)
    if kind is None:
        if not all(isinstance(v, Mapping) for v in expr.values()):
            raise SuiteError(
                file, where, f"unknown expression (one of: {', '.join(MOCK_KINDS)})", dict(expr)
            )
        for key, sub in expr.items():  # a nested object of expressions
            check_expr(file, f"{where}.{key}", sub, known)
        return
    shapes.check_keys(file, where, expr, (kind, *_EXTRA.get(kind, ())))
    _check_kind(file, where, kind, expr, known)


def _check_kind(file: Path, base: str, kind: str, expr: Mapping[str, Any], known: set[str]) -> None:
    where, val = f"{base}.{kind}", expr[kind]
    if kind in ("arg", "mask"):
        name = shapes.text(file, where, val)
        if name.split(".")[0] not in known:
            raise SuiteError(file, where, "names no parameter of the tool", name)
    elif kind == "choice":
        if not isinstance(val, list) or not val:
            raise SuiteError(file, where, "must be a non-empty list", val)
    elif kind in ("integer", "number", "date"):
        shapes.pair(file, where, val, kind)
        if "decimals" in expr:
            shapes.integer(file, f"{base}.decimals", expr["decimals"], 0, 10)
    elif kind == "code":
        shapes.code_pattern(file, where, val)
    elif kind == "template":
        check_template_refs(file, where, val, known)
    elif kind == "list":
        _check_list(file, where, val, known)


def _check_list(file: Path, where: str, val: Any, known: set[str]) -> None:
    val = shapes.mapping(file, where, val, "{n: [lo, hi], item: {...}}")
    shapes.check_keys(file, where, val, ("n", "item"))
    lo, hi = shapes.pair(file, f"{where}.n", val.get("n", [1, 3]), "integer")
    if lo < 0 or hi > MAX_LIST_ITEMS:
        raise SuiteError(file, f"{where}.n", f"must lie within [0, {MAX_LIST_ITEMS}]", [lo, hi])
    item = shapes.mapping(file, f"{where}.item", val.get("item"), "a mapping of item fields")
    check_fields(file, f"{where}.item", item, known)


def check_template_refs(file: Path, where: str, value: Any, known: set[str]) -> None:
    """Every `{name}` in mock text names an argument or an earlier field."""
    if isinstance(value, str):
        for name in shapes.fields_of(value):
            if name.split(".")[0] not in known:
                raise SuiteError(
                    file, where, f"{{{name}}} is neither a parameter nor an earlier field", value
                )
    elif isinstance(value, Mapping):
        for key, sub in value.items():
            check_template_refs(file, f"{where}.{key}", sub, known)
    elif isinstance(value, list):
        for i, sub in enumerate(value):
            check_template_refs(file, f"{where}[{i}]", sub, known)


def check_answer(file: Path, spec: ToolSpec, result: Mapping, answer: Any) -> None:
    answer = shapes.mapping(file, "$.answer", answer)
    shapes.check_keys(file, "$.answer", answer, ANSWER_KEYS)
    mock = result.get("mock", {})
    args = set(spec.parameters.get("properties") or {})
    for j, fact in enumerate(shapes.texts(file, "$.answer.facts", answer.get("facts") or [])):
        if fact not in mock:
            raise SuiteError(file, f"$.answer.facts[{j}]", "not a field of result.mock", fact)
    err = result.get("error")
    err_fields = set(err["result"]) if isinstance(err, Mapping) else set()
    display = shapes.mapping(file, "$.answer.display", answer.get("display") or {})
    for field, table in display.items():
        if field not in set(mock) | args | err_fields:
            raise SuiteError(
                file, f"$.answer.display.{field}", "not a result field nor a parameter", field
            )
        table = shapes.mapping(file, f"$.answer.display.{field}", table, "value -> how it is said")
        for value, said in table.items():
            if not isinstance(said, str):
                shapes.per_lang(file, f"$.answer.display.{field}.{value}", said, "text")
    _check_answer_texts(file, "$.answer", answer, set(mock) | args, "a result field")
    if "error" in answer:
        error = shapes.per_lang(file, "$.answer.error", answer["error"])
        _check_answer_texts(file, "$.answer.error", error, err_fields | args, "an error field")


def _check_answer_texts(
    file: Path, where: str, table: Mapping[str, Any], fields: set[str], what: str
) -> None:
    for lang in shapes.LANGS:
        for j, text in enumerate(shapes.texts(file, f"{where}.{lang}", table.get(lang) or [])):
            for name in shapes.fields_of(text):
                if name.split(".")[0] not in fields:
                    raise SuiteError(
                        file,
                        f"{where}.{lang}[{j}]",
                        f"{{{name}}} is neither {what} nor a parameter",
                        text,
                    )
