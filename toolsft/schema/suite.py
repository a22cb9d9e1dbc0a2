"""Load a tool suite folder into a validated, immutable `Suite`.

Everything is checked before anything is generated; a `SuiteError` names the file, the JSON
path and the bad value. See tool_schemas/README.md for the format.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolsft.schema import checks
from toolsft.schema.errors import SuiteError
from toolsft.schema.executor import Executor
from toolsft.schema.files import SuiteFiles
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
    files = SuiteFiles(root)
    cfg_file = root / "suite.yaml"
    if not files.exists("suite.yaml"):
        raise SuiteError(root, "$", "not a suite folder: suite.yaml is missing")
    config = files.load("suite.yaml")
    if not isinstance(config, Mapping):
        raise SuiteError(cfg_file, "$", "must be a mapping", type(config).__name__)
    checks.check_suite_config(cfg_file, config)
    tools = load_tools(files, "tools.json")
    by_name = {t.name: t for t in tools}
    gens = {}
    for name in by_name:
        rel = f"tools/{name}.yaml"
        if not files.exists(rel):
            raise SuiteError(
                root / rel, "$", f"tool {name!r} from tools.json has no generation file"
            )
        gens[name] = load_tool_gen(files, rel, by_name, config)
    for file in sorted((root / "tools").glob("*.yaml")):
        if file.stem not in by_name:
            raise SuiteError(file, "$.tool", "names no tool in tools.json", file.stem)
    policy = policy_from_config(config.get("policy") or {})
    for i, name in enumerate((config.get("policy") or {}).get("confirm_required") or ()):
        if name not in by_name:
            raise SuiteError(cfg_file, f"$.policy.confirm_required[{i}]", "unknown tool", name)
    executor = Executor({n: g.result for n, g in gens.items()})
    return Suite(
        name=str(config.get("name") or _folder_name(files.real)),
        path=root,
        hash=files.hash(),
        tools=tools,
        gen=gens,
        config=config,
        policy=policy,
        executor=executor,
    )


def load_tools(files: SuiteFiles, rel: str) -> tuple[ToolSpec, ...]:
    file = files.root / rel
    data = files.load(rel)
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


def load_tool_gen(
    files: SuiteFiles, rel: str, tools: Mapping[str, ToolSpec], config: Mapping[str, Any]
) -> ToolGen:
    file = files.root / rel
    raw = files.load(rel)
    if not isinstance(raw, Mapping):
        raise SuiteError(file, "$", "must be a mapping", type(raw).__name__)
    checks.check_keys(file, "$", raw, checks.TOOL_GEN_KEYS)
    name = raw.get("tool")
    if name != Path(rel).stem:
        raise SuiteError(
            file, "$.tool", f"must name the tool of this file ({Path(rel).stem})", name
        )
    spec = tools[name]
    pools = config.get("pools") or {}
    checks.check_confusable(file, raw.get("confusable") or [], tools, name)
    checks.check_slots(file, spec, raw.get("slots") or {}, pools)
    templates = checks.check_templates(file, spec, raw.get("templates"))
    checks.check_drawn_slots(file, spec, raw.get("slots") or {}, pools, templates)
    checks.check_ask(file, spec, raw.get("ask") or {})
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


def _folder_name(real: Path) -> str:
    # The name goes into row ids, file names and console output: keep it to plain characters.
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", real.name).strip("_.") or "suite"
