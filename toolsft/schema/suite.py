"""Load a tool suite folder into a validated, immutable `Suite`.

Everything is checked before anything is generated; a `SuiteError` names the file, the JSON
path and the bad value. See tool_schemas/README.md for the format.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from toolsft.schema import checks
from toolsft.schema.errors import SuiteError
from toolsft.schema.executor import Executor
from toolsft.schema.policy import Policy, policy_from_config
from toolsft.types import ToolSpec


@dataclass(frozen=True)
class ToolGen:
    """Generation settings of one tool (`tools/<name>.yaml`), validated."""

    name: str
    file: Path
    confusable: tuple[str, ...]
    slots: Mapping[str, Any]
    templates: Mapping[str, tuple[str, ...]]
    holdout: Mapping[str, tuple[str, ...]]
    ask: Mapping[str, Mapping[str, str]]
    result: Mapping[str, Any]
    answer: Mapping[str, Any]


@dataclass(frozen=True)
class Suite:
    name: str
    path: Path
    hash: str
    """SHA-256 of every file of the suite: runs on different suites never compare."""
    tools: tuple[ToolSpec, ...]
    gen: Mapping[str, ToolGen]
    config: Mapping[str, Any]
    policy: Policy
    executor: Executor

    def tool(self, name: str) -> ToolSpec:
        for t in self.tools:
            if t.name == name:
                return t
        raise KeyError(f"suite {self.name} has no tool {name!r}")

    @property
    def tools_by_name(self) -> dict[str, ToolSpec]:
        return {t.name: t for t in self.tools}


def load_suite(path: str | Path) -> Suite:
    root = Path(path)
    if not (root / "suite.yaml").is_file():
        raise SuiteError(root, "$", "not a suite folder: suite.yaml is missing")
    config = read_data(root / "suite.yaml")
    if not isinstance(config, Mapping):
        raise SuiteError(root / "suite.yaml", "$", "must be a mapping", type(config).__name__)
    checks.check_suite_config(root / "suite.yaml", config)
    tools = load_tools(root / "tools.json")
    by_name = {t.name: t for t in tools}
    gens = {}
    for name in by_name:
        file = root / "tools" / f"{name}.yaml"
        if not file.is_file():
            raise SuiteError(file, "$", f"tool {name!r} from tools.json has no generation file")
        gens[name] = load_tool_gen(file, by_name, config)
    for file in sorted((root / "tools").glob("*.yaml")):
        if file.stem not in by_name:
            raise SuiteError(file, "$.tool", "names no tool in tools.json", file.stem)
    policy = policy_from_config(config.get("policy") or {})
    for name in policy.confirm_required:
        if name not in by_name:
            raise SuiteError(root / "suite.yaml", "$.policy.confirm_required", "unknown tool", name)
    executor = Executor({n: g.result for n, g in gens.items()})
    return Suite(
        name=str(config.get("name", root.name)),
        path=root,
        hash=suite_hash(root),
        tools=tools,
        gen=gens,
        config=config,
        policy=policy,
        executor=executor,
    )


def read_data(file: Path) -> Any:
    """Parse a YAML or JSON file; errors name the file and the line."""
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise SuiteError(file, "$", f"cannot read: {exc.strerror}") from exc
    try:
        if file.suffix == ".json":
            return json.loads(text)
        return yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        raise SuiteError(file, f"line {exc.lineno}", f"invalid JSON: {exc.msg}") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "$"
        raise SuiteError(file, where, f"invalid YAML: {getattr(exc, 'problem', exc)}") from exc


def load_tools(file: Path) -> tuple[ToolSpec, ...]:
    data = read_data(file)
    if not isinstance(data, list) or not data:
        raise SuiteError(file, "$", "must be a non-empty list of OpenAI function tools")
    seen: dict[str, int] = {}
    tools = []
    for i, item in enumerate(data):
        spec = checks.check_tool(file, i, item)
        if spec.name in seen:
            raise SuiteError(
                file,
                f"$[{i}].function.name",
                f"duplicate tool name (first at $[{seen[spec.name]}])",
                spec.name,
            )
        seen[spec.name] = i
        tools.append(spec)
    return tuple(tools)


def load_tool_gen(file: Path, tools: Mapping[str, ToolSpec], config: Mapping[str, Any]) -> ToolGen:
    raw = read_data(file)
    if not isinstance(raw, Mapping):
        raise SuiteError(file, "$", "must be a mapping", type(raw).__name__)
    checks.check_keys(file, "$", raw, checks.TOOL_GEN_KEYS)
    name = raw.get("tool")
    if name not in tools:
        raise SuiteError(file, "$.tool", "names no tool in tools.json", name)
    spec = tools[name]
    pools = config.get("pools") or {}
    checks.check_confusable(file, raw.get("confusable") or [], tools, name)
    checks.check_slots(file, spec, raw.get("slots") or {}, pools)
    templates = checks.check_templates(file, spec, raw.get("templates"))
    result = raw.get("result") or {}
    checks.check_result(file, spec, result)
    answer = raw.get("answer") or {}
    checks.check_answer(file, spec, result, answer)
    holdout = (raw.get("templates") or {}).get("holdout") or {}
    return ToolGen(
        name=name,
        file=file,
        confusable=tuple(raw.get("confusable") or ()),
        slots=dict(raw.get("slots") or {}),
        templates={lang: tuple(templates.get(lang, ())) for lang in ("zh", "en")},
        holdout={lang: tuple(holdout.get(lang, ())) for lang in ("zh", "en")},
        ask=dict(raw.get("ask") or {}),
        result=result,
        answer=answer,
    )


def suite_hash(root: Path) -> str:
    h = hashlib.sha256()
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(file.relative_to(root).as_posix().encode() + b"\0")
        h.update(file.read_bytes() + b"\0")
    return h.hexdigest()
