"""Validation of every part of a suite; each check raises a `SuiteError` naming the place."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from toolsft.schema import mocks, params, shapes
from toolsft.schema.errors import SuiteError
from toolsft.schema.policy import POLICY_KEYS
from toolsft.schema.pools import entry_values, resolve_pool
from toolsft.schema.shapes import LANGS, check_keys
from toolsft.schema.templates import parse_template
from toolsft.schema.validate import value_errors
from toolsft.types import ToolSpec

__all__ = ["check_keys", "param_schema"]

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
ENTRY_KEYS = ("value", "say", "alias", *LANGS)
FIRST_DAY, LAST_DAY = dt.date(1900, 1, 1), dt.date(2199, 12, 31)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def check_suite_config(file: Path, cfg: Mapping[str, Any]) -> None:
    check_keys(file, "$", cfg, SUITE_KEYS)
    if "name" in cfg and not (isinstance(cfg["name"], str) and _NAME.fullmatch(cfg["name"])):
        raise SuiteError(file, "$.name", "must match [A-Za-z0-9][A-Za-z0-9_.-]{0,63}", cfg["name"])
    if "description" in cfg:
        shapes.text(file, "$.description", cfg["description"])
    if "dates" in cfg:
        shapes.pair(file, "$.dates", cfg["dates"], "date")
        for i, day in enumerate(cfg["dates"]):
            # rows add weeks to "today": a date near year 9999 would overflow mid-generation
            if not FIRST_DAY <= shapes.iso_date(file, f"$.dates[{i}]", day) <= LAST_DAY:
                raise SuiteError(file, f"$.dates[{i}]", f"must lie in {FIRST_DAY}..{LAST_DAY}", day)
    if "system" in cfg:
        shapes.per_lang(file, "$.system", cfg["system"], "text")
    for key in ("no_tool_reply", "connectors"):
        if key in cfg:
            shapes.per_lang(file, f"$.{key}", cfg[key])
    if "irrelevant" in cfg:
        irr = shapes.per_lang(file, "$.irrelevant", cfg["irrelevant"], extra=("holdout",))
        if "holdout" in irr:
            shapes.per_lang(file, "$.irrelevant.holdout", irr["holdout"])
    if "context" in cfg:
        _check_context(file, cfg["context"])
    _check_policy(file, cfg.get("policy") or {})
    pools = shapes.mapping(file, "$.pools", cfg.get("pools") or {})
    for name, pool in pools.items():
        check_pool(file, f"$.pools.{name}", pool)


def _check_context(file: Path, context: Any) -> None:
    context = shapes.mapping(file, "$.context", context, "a mapping of languages (zh, en)")
    check_keys(file, "$.context", context, LANGS)
    for lang, pairs in context.items():
        if not isinstance(pairs, list):
            raise SuiteError(
                file, f"$.context.{lang}", "must be a list of {user, assistant}", pairs
            )
        for i, turn in enumerate(pairs):
            where = f"$.context.{lang}[{i}]"
            turn = shapes.mapping(file, where, turn, "{user: ..., assistant: ...}")
            check_keys(file, where, turn, ("user", "assistant"))
            for role in ("user", "assistant"):
                shapes.text(file, f"{where}.{role}", turn.get(role))


def _check_policy(file: Path, policy: Any) -> None:
    policy = shapes.mapping(file, "$.policy", policy)
    check_keys(file, "$.policy", policy, POLICY_KEYS)
    for key in ("forbidden_phrases", "confirm_required"):
        if key in policy:
            shapes.texts(file, f"$.policy.{key}", policy[key])
    patterns = shapes.mapping(file, "$.policy.pii_patterns", policy.get("pii_patterns") or {})
    for name, pattern in patterns.items():
        shapes.regex(file, f"$.policy.pii_patterns.{name}", pattern)
    conf = shapes.mapping(file, "$.policy.confirmation", policy.get("confirmation") or {})
    if True in conf or False in conf:
        raise SuiteError(
            file, "$.policy.confirmation", 'YAML read a bare yes/no as a boolean: write "yes"'
        )
    check_keys(file, "$.policy.confirmation", conf, ("ask", "yes"))
    if "ask" in conf:
        shapes.per_lang(file, "$.policy.confirmation.ask", conf["ask"], "text")
    if "yes" in conf:
        shapes.per_lang(file, "$.policy.confirmation.yes", conf["yes"])


def check_pool(file: Path, where: str, pool: Any) -> None:
    """`{values: [...], holdout: [...]}`: at least one value, entries the sampler can read."""
    if not isinstance(pool, Mapping) or not isinstance(pool.get("values"), list):
        raise SuiteError(file, where, "a pool is {values: [...], holdout: [...]}", pool)
    if not pool["values"]:
        raise SuiteError(file, f"{where}.values", "is empty: a pool needs at least one value")
    holdout = pool.get("holdout") or []
    if not isinstance(holdout, list):
        raise SuiteError(file, f"{where}.holdout", "must be a list of values", holdout)
    for part, entries in (("values", pool["values"]), ("holdout", holdout)):
        for j, entry in enumerate(entries):
            _check_entry(file, f"{where}.{part}[{j}]", entry)
    check_holdout(file, where, pool)


def _check_entry(file: Path, where: str, entry: Any) -> None:
    if not isinstance(entry, Mapping):
        if isinstance(entry, list):
            raise SuiteError(file, where, "a pool entry is a value or a mapping", entry)
        return
    check_keys(file, where, entry, ENTRY_KEYS)
    if "value" not in entry and not any(k in entry for k in LANGS):
        raise SuiteError(file, where, "needs `value` or a value per language (zh, en)", entry)
    if "alias" in entry:
        shapes.texts(file, f"{where}.alias", entry["alias"])
    say = entry.get("say")
    if isinstance(say, Mapping):
        shapes.per_lang(file, f"{where}.say", say, "text")
    elif say is not None:
        shapes.text(file, f"{where}.say", say)


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
    description = shapes.text(file, f"{where}.function.description", fn.get("description", ""))
    schema = fn.get("parameters")
    if not isinstance(schema, Mapping) or schema.get("type") != "object":
        raise SuiteError(file, f"{where}.function.parameters", "must be an object schema", schema)
    params.check_json_schema(file, f"{where}.function.parameters", schema)
    params.check_parameters(file, f"{where}.function.parameters", schema)
    return ToolSpec(name, description, schema)


def param_schema(schema: Mapping[str, Any], path: str) -> Mapping[str, Any] | None:
    """The schema of parameter `a` or nested field `a.b`, or None when there is none."""
    cur: Any = schema
    for part in path.split("."):
        if not isinstance(cur, Mapping):
            return None
        if cur.get("type") == "array":
            cur = cur.get("items")
            if not isinstance(cur, Mapping):
                return None
        props = cur.get("properties")
        cur = props.get(part) if isinstance(props, Mapping) else None
    return cur if isinstance(cur, Mapping) else None


def check_confusable(file: Path, names: Any, tools: Mapping[str, ToolSpec], own: str) -> None:
    for j, n in enumerate(shapes.texts(file, "$.confusable", names)):
        if n not in tools or n == own:
            raise SuiteError(file, f"$.confusable[{j}]", "must name another tool of the suite", n)


def check_slots(file: Path, spec: ToolSpec, slots: Any, pools: Mapping) -> None:
    slots = shapes.mapping(file, "$.slots", slots)
    for slot, cfg in slots.items():
        where = f"$.slots.{slot}"
        schema = param_schema(spec.parameters, str(slot))
        if schema is None:
            raise SuiteError(file, where, f"not a parameter of {spec.name}", slot)
        if isinstance(cfg, str) and not cfg.startswith("@"):
            raise SuiteError(file, where, 'a string slot must name a pool as "@name"', cfg)
        if not isinstance(cfg, str | Mapping):
            raise SuiteError(file, where, 'a slot is "@pool" or a mapping of settings', cfg)
        if isinstance(cfg, Mapping):
            _check_slot_settings(file, where, schema, cfg)
        pool = resolve_pool(cfg, pools)
        names_pool = isinstance(cfg, str) or (isinstance(cfg, Mapping) and "pool" in cfg)
        if names_pool and pool is None:
            raise SuiteError(file, where, "unknown pool", cfg)
        if isinstance(cfg, Mapping) and "values" in cfg:
            check_pool(file, where, cfg)
        if pool is not None:
            item_schema = schema.get("items", {}) if schema.get("type") == "array" else schema
            check_pool_values(file, where, pool, item_schema)


def _check_slot_settings(file: Path, where: str, schema: Mapping, cfg: Mapping) -> None:
    check_keys(file, where, cfg, SLOT_KEYS)
    if "pool" in cfg:
        shapes.text(file, f"{where}.pool", cfg["pool"])
    if "say" in cfg:
        shapes.mapping(file, f"{where}.say", cfg["say"], "a mapping of value -> how it is said")
        for value, said in cfg["say"].items():
            _check_said_value(file, f"{where}.say.{value}", schema, value)
            if isinstance(said, Mapping):
                shapes.per_lang(file, f"{where}.say.{value}", said, "text")
            else:
                shapes.text(file, f"{where}.say.{value}", said)
    for key in ("relative", "words"):
        if key in cfg:
            shapes.boolean(file, f"{where}.{key}", cfg[key])
    if "pattern" in cfg:
        shapes.code_pattern(file, f"{where}.pattern", cfg["pattern"])
    if "range" in cfg:
        shapes.pair(file, f"{where}.range", cfg["range"])
    if "decimals" in cfg:
        shapes.integer(file, f"{where}.decimals", cfg["decimals"], 0, 10)
    if "item" in cfg:
        item = shapes.per_lang(file, f"{where}.item", cfg["item"], "text")
        props = (schema.get("items") or {}).get("properties") or {}
        for lang, text in item.items():
            for name in shapes.fields_of(text):
                if name not in props:
                    raise SuiteError(
                        file,
                        f"{where}.item.{lang}",
                        f"{{{name}}} is not a field of the items",
                        text,
                    )


def _check_said_value(file: Path, where: str, schema: Mapping, key: Any) -> None:
    """A `say` entry must name a value the parameter can take (as `gen.sample` looks it up)."""
    if "enum" in schema:
        values = list(schema["enum"])
    elif schema.get("type") == "boolean":
        values = [True, False]
    else:
        return
    if not any(key == v or key == str(v) or key == str(v).lower() for v in values):
        raise SuiteError(file, where, f"not a value of the parameter (one of {values})", key)


def check_drawn_slots(
    file: Path, spec: ToolSpec, slots: Mapping, pools: Mapping, templates: Mapping
) -> None:
    """Every value the sampler draws from a parameter's schema (a slot some template uses,
    without a pool) can be drawn and passes the schema."""
    texts = [t for k in LANGS for t in templates.get(k) or []]
    texts += [t for k in LANGS for t in (templates.get("holdout") or {}).get(k) or []]
    used = sorted({slot for t in texts for slot in parse_template(t).slots})
    for path in used:
        schema = param_schema(spec.parameters, path) or {}
        cfg = slots.get(path, {})
        if resolve_pool(cfg, pools) is not None:
            continue
        if schema.get("type") != "array":
            params.check_drawn(file, f"$.slots.{path}", schema, _settings(cfg))
            continue
        items = schema.get("items") or {}
        if items.get("type") != "object":
            params.check_drawn(file, f"$.slots.{path}", items, {})
            continue
        said = " ".join(_settings(cfg).get("item", {}).values())
        for name in items.get("properties") or {}:
            sub = f"{path}.{name}"
            drawn = name in (items.get("required") or ()) or f"{{{name}}}" in said
            if drawn and resolve_pool(slots.get(sub, {}), pools) is None:
                sub_schema = items["properties"][name]
                params.check_drawn(file, f"$.slots.{sub}", sub_schema, _settings(slots.get(sub)))


def _settings(cfg: Any) -> Mapping[str, Any]:
    return cfg if isinstance(cfg, Mapping) else {}


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
    if not isinstance(templates, Mapping) or not any(templates.get(k) for k in LANGS):
        raise SuiteError(file, "$.templates", "needs {zh: [...], en: [...]}", templates)
    check_keys(file, "$.templates", templates, (*LANGS, "holdout"))
    groups = [
        (f"$.templates.{k}", shapes.texts(file, f"$.templates.{k}", templates.get(k) or []))
        for k in LANGS
    ]
    holdout = shapes.per_lang(file, "$.templates.holdout", templates.get("holdout") or {})
    groups += [(f"$.templates.holdout.{k}", holdout.get(k) or []) for k in LANGS]
    for where, items in groups:
        for j, text in enumerate(items):
            check_template(file, f"{where}[{j}]", spec, text)
    for lang in LANGS:
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


def check_ask(file: Path, spec: ToolSpec, ask: Any) -> None:
    ask = shapes.mapping(file, "$.ask", ask, "a mapping of parameter -> {zh, en}")
    for name, texts in ask.items():
        if param_schema(spec.parameters, str(name)) is None:
            raise SuiteError(file, f"$.ask.{name}", f"not a parameter of {spec.name}", name)
        shapes.per_lang(file, f"$.ask.{name}", texts, "text")


def check_result(file: Path, spec: ToolSpec, result: Any) -> None:
    mocks.check_result(file, spec, result, set(spec.parameters.get("properties") or {}))


check_answer = mocks.check_answer
