"""Validation of every part of a suite; each check raises a `SuiteError` naming the place."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema

from toolsft.schema.errors import SuiteError
from toolsft.schema.executor import MOCK_KINDS
from toolsft.schema.policy import POLICY_KEYS
from toolsft.schema.pools import entry_values, resolve_pool
from toolsft.schema.templates import parse_template
from toolsft.schema.validate import value_errors
from toolsft.types import ToolSpec

SUITE_KEYS = (
    "name",
    "description",
    "system",
    "dates",
    "pools",
    "irrelevant",
    "no_tool_reply",
    "connectors",
    "context",
    "policy",
)
TOOL_GEN_KEYS = ("tool", "confusable", "slots", "templates", "ask", "result", "answer")
SLOT_KEYS = (
    "pool",
    "values",
    "holdout",
    "say",
    "relative",
    "words",
    "item",
    "pattern",
    "range",
    "decimals",
)


def check_keys(file: Path, where: str, obj: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    for key in obj:
        if key not in allowed:
            raise SuiteError(file, f"{where}.{key}", f"unknown key (allowed: {', '.join(allowed)})")


def check_suite_config(file: Path, cfg: Mapping[str, Any]) -> None:
    check_keys(file, "$", cfg, SUITE_KEYS)
    policy = cfg.get("policy") or {}
    if not isinstance(policy, Mapping):
        raise SuiteError(file, "$.policy", "must be a mapping", policy)
    check_keys(file, "$.policy", policy, POLICY_KEYS)
    conf = policy.get("confirmation") or {}
    if True in conf or False in conf:
        raise SuiteError(
            file, "$.policy.confirmation", 'YAML read a bare yes/no as a boolean: write "yes"'
        )
    check_keys(file, "$.policy.confirmation", conf, ("ask", "yes"))
    for name, pattern in (policy.get("pii_patterns") or {}).items():
        try:
            re.compile(pattern)
        except re.error as exc:
            raise SuiteError(
                file, f"$.policy.pii_patterns.{name}", f"bad regex: {exc}", pattern
            ) from exc
    for key in ("system", "no_tool_reply", "irrelevant"):
        if key in cfg and not isinstance(cfg[key], Mapping):
            raise SuiteError(file, f"$.{key}", "must map languages (zh, en) to text", cfg[key])
    for name, pool in (cfg.get("pools") or {}).items():
        if not isinstance(pool, Mapping) or not isinstance(pool.get("values"), list):
            raise SuiteError(
                file, f"$.pools.{name}", "a pool is {values: [...], holdout: [...]}", pool
            )
        check_holdout(file, f"$.pools.{name}", pool)


def check_holdout(file: Path, where: str, pool: Mapping[str, Any]) -> None:
    """Holdout values must be unseen in training: the test split measures generalisation."""
    seen = {repr(v) for e in pool.get("values") or [] for v in entry_values(e)}
    for j, entry in enumerate(pool.get("holdout") or []):
        for v in entry_values(entry):
            if repr(v) in seen:
                raise SuiteError(file, f"{where}.holdout[{j}]", "is also a training value", v)


def check_tool(file: Path, i: int, item: Any) -> ToolSpec:
    where = f"$[{i}]"
    fn = item.get("function") if isinstance(item, Mapping) else None
    if (
        not isinstance(item, Mapping)
        or item.get("type") != "function"
        or not isinstance(fn, Mapping)
    ):
        raise SuiteError(file, where, 'must be {"type": "function", "function": {...}}', item)
    name = fn.get("name")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]{0,63}", name):
        raise SuiteError(file, f"{where}.function.name", "must match [A-Za-z_][A-Za-z0-9_-]*", name)
    params = fn.get("parameters")
    if not isinstance(params, Mapping) or params.get("type") != "object":
        raise SuiteError(file, f"{where}.function.parameters", "must be an object schema", params)
    try:
        jsonschema.Draft202012Validator.check_schema(params)
    except jsonschema.SchemaError as exc:
        sub = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in exc.path)
        raise SuiteError(
            file,
            f"{where}.function.parameters{sub}",
            f"not a valid JSON Schema (2020-12): {exc.message}",
            exc.instance,
        ) from exc
    return ToolSpec(name, str(fn.get("description", "")), params)


def param_schema(params: Mapping[str, Any], path: str) -> Mapping[str, Any] | None:
    """The schema of parameter `a` or nested field `a.b`, or None when there is none."""
    cur: Mapping[str, Any] | None = params
    for part in path.split("."):
        if cur is None:
            return None
        if cur.get("type") == "array":
            cur = cur.get("items")
            if cur is None:
                return None
        cur = (cur.get("properties") or {}).get(part)
    return cur


def check_confusable(file: Path, names: list[Any], tools: Mapping[str, ToolSpec], own: str) -> None:
    for j, n in enumerate(names):
        if n not in tools or n == own:
            raise SuiteError(file, f"$.confusable[{j}]", "must name another tool of the suite", n)


def check_slots(file: Path, spec: ToolSpec, slots: Mapping[str, Any], pools: Mapping) -> None:
    for slot, cfg in slots.items():
        where = f"$.slots.{slot}"
        schema = param_schema(spec.parameters, slot)
        if schema is None:
            raise SuiteError(file, where, f"not a parameter of {spec.name}", slot)
        if isinstance(cfg, str) and not cfg.startswith("@"):
            raise SuiteError(file, where, 'a string slot must name a pool as "@name"', cfg)
        if isinstance(cfg, Mapping):
            check_keys(file, where, cfg, SLOT_KEYS)
        pool = resolve_pool(cfg, pools)
        names_pool = isinstance(cfg, str) or (isinstance(cfg, Mapping) and "pool" in cfg)
        if names_pool and pool is None:
            raise SuiteError(file, where, "unknown pool", cfg)
        if isinstance(cfg, Mapping) and "values" in cfg:
            check_holdout(file, where, cfg)
        if pool is not None:
            item_schema = schema.get("items", {}) if schema.get("type") == "array" else schema
            check_pool_values(file, where, pool, item_schema)


def check_pool_values(file: Path, where: str, pool: Mapping[str, Any], schema: Mapping) -> None:
    for part in ("values", "holdout"):
        for j, entry in enumerate(pool.get(part) or []):
            for value in entry_values(entry):
                errs = value_errors(schema, value)
                if errs:
                    raise SuiteError(
                        file,
                        f"{where}.{part}[{j}]",
                        f"pool value violates the parameter schema: {errs[0]}",
                        value,
                    )


def check_templates(file: Path, spec: ToolSpec, templates: Any) -> Mapping[str, list[str]]:
    if not isinstance(templates, Mapping) or not any(templates.get(k) for k in ("zh", "en")):
        raise SuiteError(file, "$.templates", "needs {zh: [...], en: [...]}", templates)
    check_keys(file, "$.templates", templates, ("zh", "en", "holdout"))
    groups = [(f"$.templates.{k}", templates.get(k) or []) for k in ("zh", "en")]
    holdout = templates.get("holdout") or {}
    groups += [(f"$.templates.holdout.{k}", holdout.get(k) or []) for k in ("zh", "en")]
    for where, items in groups:
        for j, text in enumerate(items):
            check_template(file, f"{where}[{j}]", spec, text)
    for lang in ("zh", "en"):
        train = set(templates.get(lang) or [])
        for j, text in enumerate(holdout.get(lang) or []):
            if text in train:
                raise SuiteError(
                    file, f"$.templates.holdout.{lang}[{j}]", "is also a training template", text
                )
    return templates


def check_template(file: Path, where: str, spec: ToolSpec, text: Any) -> None:
    if not isinstance(text, str):
        raise SuiteError(file, where, "a template is a string", text)
    try:
        tpl = parse_template(text)
    except ValueError as exc:
        raise SuiteError(file, where, str(exc), text) from exc
    for slot in tpl.slots:
        if param_schema(spec.parameters, slot) is None:
            raise SuiteError(
                file, where, f"slot {{{slot}}} is not a parameter of {spec.name}", text
            )


def check_result(file: Path, spec: ToolSpec, result: Mapping[str, Any]) -> None:
    if not isinstance(result.get("mock"), Mapping):
        raise SuiteError(
            file, "$.result.mock", "needs a mapping of result fields", result.get("mock")
        )
    schema = result.get("schema")
    if schema is not None:
        try:
            jsonschema.Draft202012Validator.check_schema(schema)
        except jsonschema.SchemaError as exc:
            raise SuiteError(
                file, "$.result.schema", f"not a valid JSON Schema: {exc.message}"
            ) from exc
    for key, expr in result["mock"].items():
        if (
            isinstance(expr, Mapping)
            and expr
            and not any(k in MOCK_KINDS for k in expr)
            and not all(isinstance(v, Mapping) for v in expr.values())
        ):
            raise SuiteError(
                file,
                f"$.result.mock.{key}",
                f"unknown expression (one of: {', '.join(MOCK_KINDS)})",
                dict(expr),
            )
    err = result.get("error")
    if err is not None and (
        not isinstance(err, Mapping) or not isinstance(err.get("result"), Mapping)
    ):
        raise SuiteError(
            file, "$.result.error", "is {rate: 0.1, result: {error: ..., message: ...}}", err
        )


def check_answer(file: Path, spec: ToolSpec, result: Mapping, answer: Mapping[str, Any]) -> None:
    fields = set(result.get("mock", {})) | set(spec.parameters.get("properties") or {})
    for j, fact in enumerate(answer.get("facts") or []):
        if fact not in result.get("mock", {}):
            raise SuiteError(file, f"$.answer.facts[{j}]", "not a field of result.mock", fact)
    for lang in ("zh", "en"):
        for j, text in enumerate(answer.get(lang) or []):
            for name in re.findall(r"\{([\w.]+)\}", str(text)):
                if name.split(".")[0] not in fields:
                    raise SuiteError(
                        file,
                        f"$.answer.{lang}[{j}]",
                        f"{{{name}}} is neither a result field nor a parameter",
                        text,
                    )
