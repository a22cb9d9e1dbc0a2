"""Checks of the JSON Schemas in a suite beyond the meta-schema: what the generator can honour.

The 2020-12 meta-schema accepts `minimum: 9, maximum: 2`, an empty `enum`, `required` names
that no property declares and keywords nothing here implements (`$ref`, `oneOf`, ...). Each of
those would make generation crash, give up on every row, or teach calls no schema allows,
so each is refused here, naming the keyword's JSON path.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import jsonschema

from toolsft.schema import shapes
from toolsft.schema.errors import SuiteError
from toolsft.schema.executor import sample_code
from toolsft.schema.validate import value_errors

TYPES = ("string", "integer", "number", "boolean", "array", "object")
PARAM_KEYWORDS = (
    "type",
    "description",
    "title",
    "enum",
    "format",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "pattern",
    "items",
    "minItems",
    "maxItems",
    "uniqueItems",
    "properties",
    "required",
    "additionalProperties",
    "examples",
    "default",
    "$comment",
)
TEXT_CODE = "[a-z]{6}"
"""What the generator draws for a string with no pool, pattern or example."""
REF_KEYWORDS = ("$ref", "$dynamicRef", "$recursiveRef")
"""Suites are self-contained: a reference could point anywhere, so none is followed."""
_LIST_SUBS = ("prefixItems", "allOf", "anyOf", "oneOf")
_MAP_SUBS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_ONE_SUBS = (
    "items",
    "additionalProperties",
    "not",
    "if",
    "then",
    "else",
    "contains",
    "propertyNames",
    "unevaluatedItems",
    "unevaluatedProperties",
)
_BOUNDS = (
    ("minimum", "maximum", "greater than"),
    ("exclusiveMinimum", "maximum", "not below"),
    ("minimum", "exclusiveMaximum", "not below"),
    ("exclusiveMinimum", "exclusiveMaximum", "not below"),
    ("minLength", "maxLength", "greater than"),
    ("minItems", "maxItems", "greater than"),
)


def subschemas(schema: Any, where: str) -> Iterator[tuple[Mapping[str, Any], str]]:
    """Every schema object inside `schema` (itself first), with its JSON path."""
    if not isinstance(schema, Mapping):
        return
    yield schema, where
    for key in _ONE_SUBS:
        if key in schema:
            yield from subschemas(schema[key], f"{where}.{key}")
    for key in _LIST_SUBS:
        for i, sub in enumerate(schema.get(key) or () if isinstance(schema.get(key), list) else ()):
            yield from subschemas(sub, f"{where}.{key}[{i}]")
    for key in _MAP_SUBS:
        subs = schema.get(key)
        if isinstance(subs, Mapping):
            for name, sub in subs.items():
                yield from subschemas(sub, f"{where}.{key}.{name}")


def check_json_schema(file: Path, where: str, schema: Mapping[str, Any]) -> None:
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        sub = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in exc.path)
        raise SuiteError(
            file,
            f"{where}{sub}",
            f"not a valid JSON Schema (2020-12): {exc.message}",
            exc.instance,
        ) from exc


def check_parameters(file: Path, where: str, params: Mapping[str, Any]) -> None:
    """A tool's `parameters`: only keywords the sampler honours, no contradictions."""
    for node, path in subschemas(params, where):
        for key in node:
            if key not in PARAM_KEYWORDS:
                raise SuiteError(
                    file,
                    f"{path}.{key}",
                    f"unsupported schema keyword (supported: {', '.join(PARAM_KEYWORDS)})",
                    node[key],
                )
        kind = node.get("type")
        if kind is not None and kind not in TYPES:
            raise SuiteError(
                file, f"{path}.type", f"unsupported type (one of: {', '.join(TYPES)})", kind
            )
        for name in node.get("properties") or {}:
            if "." in name:  # slots name nested fields as a.b
                raise SuiteError(file, f"{path}.properties", "a name with a '.'", name)
        for key in ("properties", "items"):
            for name, sub in _children(node, key):
                if not isinstance(sub, Mapping):
                    at = f"{path}.{key}" + (f".{name}" if name else "")
                    raise SuiteError(file, at, "must be a schema object (not true/false)", sub)
        check_node(file, path, node)


def check_result_schema(file: Path, where: str, schema: Mapping[str, Any]) -> None:
    """A result schema only validates, so any keyword may appear, but nothing it names may be
    out of reach and no regex may hang."""
    for node, path in subschemas(schema, where):
        for key in REF_KEYWORDS:
            if key in node:
                raise SuiteError(
                    file,
                    f"{path}.{key}",
                    "references are not supported: inline the schema",
                    node[key],
                )
        check_node(file, path, node)


def check_node(file: Path, path: str, node: Mapping[str, Any]) -> None:
    """What any schema object must not say: contradictory bounds, values it refuses itself,
    required names nothing declares, regexes that do not compile or can hang."""
    for lo_key, hi_key, how in _BOUNDS:
        lo, hi = node.get(lo_key), node.get(hi_key)
        if lo is None or hi is None:
            continue
        if lo > hi or (how == "not below" and lo >= hi):
            raise SuiteError(file, f"{path}.{lo_key}", f"is {how} {hi_key} ({hi})", lo)
    if "pattern" in node:
        shapes.regex(file, f"{path}.pattern", node["pattern"])
    for name in node.get("patternProperties") or {}:
        shapes.regex(file, f"{path}.patternProperties", name)
    _check_required(file, path, node)
    _check_values(file, path, node)


def _children(node: Mapping[str, Any], key: str) -> list[tuple[str, Any]]:
    if key not in node:
        return []
    if key == "items":
        return [("", node["items"])]
    subs = node[key]
    return list(subs.items()) if isinstance(subs, Mapping) else []


def _check_required(file: Path, path: str, node: Mapping[str, Any]) -> None:
    if "patternProperties" in node or isinstance(node.get("additionalProperties"), Mapping):
        return  # names may be declared by a pattern or by the schema of the rest
    declared = node.get("properties") or {}
    for i, name in enumerate(node.get("required") or ()):
        if name not in declared:
            raise SuiteError(file, f"{path}.required[{i}]", "names no property", name)


def _check_values(file: Path, path: str, node: Mapping[str, Any]) -> None:
    """`enum`, `default` and `examples` must be values the schema itself accepts."""
    if "enum" in node:
        if not node["enum"]:
            raise SuiteError(file, f"{path}.enum", "is empty: no value could ever be valid")
        rest = {k: v for k, v in node.items() if k not in ("enum", "default", "examples")}
        for i, value in enumerate(node["enum"]):
            errs = value_errors(rest, value)
            if errs:
                raise SuiteError(
                    file, f"{path}.enum[{i}]", f"violates its schema: {errs[0]}", value
                )
    whole = {k: v for k, v in node.items() if k not in ("default", "examples")}
    values = [("default", node["default"])] if "default" in node else []
    examples = node.get("examples")
    if isinstance(examples, list):
        values += [(f"examples[{i}]", v) for i, v in enumerate(examples)]
    for key, value in values:
        errs = value_errors(whole, value)
        if errs:
            raise SuiteError(file, f"{path}.{key}", f"violates its schema: {errs[0]}", value)


def drawn_kind(schema: Mapping[str, Any], cfg: Mapping[str, Any]) -> str:
    """How the generator draws a value without a pool (`toolsft.gen.sample` uses this too);
    the order is the order of precedence."""
    kind = schema.get("type")
    if "enum" in schema:
        return "enum"
    if kind == "boolean":
        return "boolean"
    if schema.get("format") == "date":
        return "date"
    if kind in ("integer", "number"):
        return "number"
    if "pattern" in cfg or "pattern" in schema:
        return "code"
    if schema.get("examples") or "default" in schema:
        return "example"
    return "text"


def sample_range(schema: Mapping[str, Any], cfg: Mapping[str, Any]) -> tuple[Any, Any]:
    """The range the generator draws a number from (mirrors `toolsft.gen.sample`)."""
    lo, hi = cfg.get("range") or (schema.get("minimum", 1), schema.get("maximum", 100))
    if "exclusiveMinimum" in schema:
        lo = max(lo, schema["exclusiveMinimum"] + 1)
    return lo, hi


def check_drawn(file: Path, where: str, schema: Mapping[str, Any], cfg: Mapping[str, Any]) -> None:
    """A value drawn from the schema (no pool) must exist and pass the schema: an empty range
    crashes the sampler, and a value the schema refuses fails every row that draws it."""
    kind = drawn_kind(schema, cfg)
    if kind == "number":
        _check_number(file, where, schema, cfg)
    elif kind in ("code", "text"):
        pattern = str(cfg.get("pattern", schema.get("pattern"))) if kind == "code" else TEXT_CODE
        if kind == "code" and "pattern" not in cfg:
            shapes.code_pattern(file, where, pattern)
        samples = [sample_code(pattern, random.Random(i)) for i in range(8)]
        if all(value_errors(schema, v) for v in samples):
            how = f"from the pattern {pattern!r}" if kind == "code" else "as 6 letters"
            raise SuiteError(
                file,
                where,
                f"no value drawn {how} passes the schema ({value_errors(schema, samples[0])[0]});"
                " give the slot values, or a simple pattern ([A-Z]{n} and literals)",
                samples[0],
            )


def _check_number(
    file: Path, where: str, schema: Mapping[str, Any], cfg: Mapping[str, Any]
) -> None:
    lo, hi = sample_range(schema, cfg)
    if lo > hi or (schema.get("type") == "integer" and int(lo) > int(hi)):
        raise SuiteError(
            file,
            where,
            f"no number to draw from {lo} to {hi}: set minimum/maximum or the slot's range",
            [lo, hi],
        )
    for i, value in enumerate((lo, hi)):
        errs = value_errors(schema, value)
        if errs:
            at = f"{where}.range[{i}]" if "range" in cfg else where
            raise SuiteError(file, at, f"draws numbers the schema refuses: {errs[0]}", value)
