"""Export generated test rows as BFCL data, so any BFCL harness can score a model on them.

Layout written under the output folder (JSON Lines, like BFCL's own files):

* `BFCL_v4_toolsft_<suite>.json` + `possible_answer/...`: rows whose target is one call.
* `BFCL_v4_toolsft_<suite>_parallel.json` + answers: rows whose target is several calls.
  BFCL's single-turn checker has no ordered mode, so these are scored in any order (the
  category name routes them to BFCL's `parallel` checker).
* `BFCL_v4_toolsft_<suite>_irrelevance.json`, no answers: rows whose right move is no call
  (irrelevant requests, clarifying questions, confirmations).

Choices, and why:

* `question` keeps every prompt message, the system one included: BFCL's prompting
  handlers merge their own system prompt into a leading system message, and FC handlers
  pass it through, so the model sees the suite's policy as it does in toolsft's own eval.
* Tools are converted to BFCL's dialect (object->dict, number->float, no type->any);
  names are kept (toolsft names are already OpenAI-safe).
* Answers wrap each gold value in a one-element list; a parameter the gold call leaves out
  gets `[""]` (may be omitted) and nothing else. Object values are wrapped one level deeper
  (`{key: [value]}`), as BFCL's dict checker expects, with `[""]` for undeclared-absent keys.

Pure conversion plus file IO: never imports torch or `toolsft.eval`.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolsft.io import DataError
from toolsft.types import Example, ToolCall, ToolSpec

log = logging.getLogger(__name__)

PREFIX = "BFCL_v4_"
_TO_BFCL = {"object": "dict", "number": "float", "null": "any"}


@dataclass
class BfclCategory:
    """One BFCL category file's worth of entries (and answers unless no-call)."""

    name: str
    entries: list[dict[str, Any]] = field(default_factory=list)
    answers: list[dict[str, Any]] | None = None


def category_names(suite: str) -> dict[str, str]:
    """kind ('single', 'parallel', 'irrelevance') -> BFCL category name for a suite."""
    base = "toolsft_" + (re.sub(r"[^a-z0-9]+", "_", suite.lower()).strip("_") or "suite")
    if "relevance" in base:
        # BFCL routes on substrings: such a name would score call rows as (ir)relevance.
        raise DataError(
            "the suite name (the data folder's name) must not contain 'relevance' (BFCL "
            "routes categories by name)",
            where="suite",
            value=suite,
        )
    # "_multiple": several functions are shown, so BFCL must look the function up by name
    # (its simple checker compares against the first function listed).
    return {
        "single": f"{base}_multiple",
        "parallel": f"{base}_parallel",
        "irrelevance": f"{base}_irrelevance",
    }


# --- dialect -----------------------------------------------------------------------------


def schema_to_bfcl(schema: Mapping[str, Any]) -> dict[str, Any]:
    """JSON Schema -> BFCL dialect, recursively in properties/items/additionalProperties."""
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "type":
            out["type"] = _bfcl_type(value)
        elif key == "properties" and isinstance(value, Mapping):
            out[key] = {p: schema_to_bfcl(s) for p, s in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, Mapping):
            out[key] = schema_to_bfcl(value)
        else:
            out[key] = value
    if "type" not in out:  # BFCL's checker needs a type on every parameter.
        out["type"] = "dict" if "properties" in out else "array" if "items" in out else "any"
    return out


def _bfcl_type(value: Any) -> str:
    if isinstance(value, list):  # e.g. ["string", "null"]: BFCL has no unions.
        kept = [t for t in value if t != "null"]
        return _bfcl_type(kept[0]) if len(kept) == 1 else "any"
    return _TO_BFCL.get(value, value) if isinstance(value, str) else "any"


def tool_to_bfcl(tool: ToolSpec) -> dict[str, Any]:
    """A toolsft tool as a BFCL function doc (`parameters` always a dict with `required`)."""
    params = schema_to_bfcl(tool.parameters or {"type": "object"})
    params["type"] = "dict"
    params.setdefault("properties", {})
    params.setdefault("required", [])
    return {"name": tool.name, "description": tool.description, "parameters": params}


def answer_for(call: ToolCall, tool: ToolSpec) -> dict[str, dict[str, list[Any]]]:
    """BFCL ground truth for one gold call: `{name: {param: [value]}}`, absent ones `[""]`."""
    props: Mapping[str, Any] = tool.parameters.get("properties", {})
    params = {p: _wrap(v, props.get(p, {})) for p, v in call.arguments.items()}
    for param in props:
        params.setdefault(param, [""])
    return {call.name: params}


def _wrap(value: Any, schema: Mapping[str, Any]) -> list[Any]:
    """`[value]`, except where BFCL's checker compares dicts key by key (dict params and
    arrays of dicts): there each key's value is itself a list of acceptable values."""
    bfcl = schema_to_bfcl(schema)
    items = bfcl.get("items")
    if not isinstance(items, Mapping):
        items = {}
    if bfcl["type"] == "dict" and isinstance(value, Mapping):
        return [_dict_answer(value, schema)]
    if (
        bfcl["type"] in ("array", "tuple")
        and items.get("type") == "dict"
        and isinstance(value, list)
        and all(isinstance(v, Mapping) for v in value)
    ):
        return [[_dict_answer(v, schema["items"]) for v in value]]
    return [value]


def _dict_answer(value: Mapping[str, Any], schema: Mapping[str, Any]) -> dict[str, list[Any]]:
    """BFCL checks dicts one level deep against `{key: [acceptable values]}`."""
    out: dict[str, list[Any]] = {k: [v] for k, v in value.items()}
    for key in schema.get("properties", {}) or {}:
        out.setdefault(key, [""])
    return out


# --- rows -> categories ----------------------------------------------------------------------


def question_messages(example: Example) -> list[dict[str, Any]]:
    """The prompt as BFCL's one-turn `question` (content always a string)."""
    out = []
    for msg in example.prompt_messages():
        msg = dict(msg)
        if msg.get("content") is None:
            msg["content"] = ""
        out.append(msg)
    return out


def convert(examples: Iterable[Example], suite: str) -> list[BfclCategory]:
    """Split rows into BFCL categories by how many calls their target turn makes."""
    names = category_names(suite)
    cats = {
        "single": BfclCategory(names["single"], answers=[]),
        "parallel": BfclCategory(names["parallel"], answers=[]),
        "irrelevance": BfclCategory(names["irrelevance"]),
    }
    for example in examples:
        calls = example.expected.calls
        kind = "irrelevance" if not calls else "single" if len(calls) == 1 else "parallel"
        cat = cats[kind]
        entry_id = f"{cat.name}_{len(cat.entries)}"
        entry: dict[str, Any] = {
            "id": entry_id,
            "question": [question_messages(example)],
            "function": [tool_to_bfcl(t) for t in example.tools],
        }
        if "id" in example.meta:
            entry["toolsft_id"] = example.meta["id"]
        cat.entries.append(entry)
        if cat.answers is not None:
            cat.answers.append({"id": entry_id, "ground_truth": _ground_truth(example)})
    return [c for c in cats.values() if c.entries]


def _ground_truth(example: Example) -> list[dict[str, Any]]:
    tools = {t.name: t for t in example.tools}
    truth = []
    for call in example.expected.calls:
        if call.name not in tools:
            raise DataError(
                f"row {example.meta.get('id', '?')}: gold call {call.name!r} is not among "
                f"its tools ({', '.join(tools)})"
            )
        truth.append(answer_for(call, tools[call.name]))
    return truth


# --- files -----------------------------------------------------------------------------------


def split_paths(data: Path, stage: int | str, split: str) -> list[Path]:
    """`<data>/stage<N>/<split>.jsonl` for one stage, or every stage folder for 'all'."""
    if str(stage) == "all":
        found = sorted(data.glob(f"stage*/{split}.jsonl"), key=lambda p: p.parent.name)
        if not found:
            raise DataError(f"no stage*/{split}.jsonl files (--split {split})", file=data)
        return found
    path = data / f"stage{stage}" / f"{split}.jsonl"
    if not path.is_file():
        raise DataError(f"no such split file (--stage {stage} --split {split})", file=path)
    return [path]


def read_examples(paths: Sequence[Path]) -> list[Example]:
    """Rows in file order; errors name the file, the line and what was wrong."""
    out = []
    for path in paths:
        # split("\n"), not splitlines(): JSON strings may hold a raw U+2028 or U+0085.
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise DataError(
                f"not UTF-8 text (a bad byte at offset {exc.start})", file=path
            ) from None
        except OSError as exc:
            raise DataError(f"cannot read: {exc.strerror or exc}", file=path) from None
        for lineno, line in enumerate(text.split("\n"), 1):
            if not line.strip():
                continue
            try:
                example = Example.from_row(json.loads(line))
                example.expected  # noqa: B018 - parse `meta.expected` now, to report it here
            except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
                raise DataError(f"not a toolsft row ({exc!r})", file=path, where=lineno) from exc
            out.append(example)
    return out


def write_categories(categories: Sequence[BfclCategory], out: Path) -> list[Path]:
    """Write each category (and its answers) as BFCL JSON Lines; returns the paths."""
    written = []
    for cat in categories:
        path = out / f"{PREFIX}{cat.name}.json"
        _write_jsonl(path, cat.entries)
        written.append(path)
        if cat.answers is not None:
            apath = out / "possible_answer" / f"{PREFIX}{cat.name}.json"
            _write_jsonl(apath, cat.answers)
            written.append(apath)
        log.info("wrote %d entries of %s", len(cat.entries), cat.name)
    return written


def _write_jsonl(path: Path, rows: Iterable[Mapping[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    path.write_text(text, encoding="utf-8")


def export(data: Path, stage: int | str, split: str, out: Path) -> list[BfclCategory]:
    """Read a generated split (suite = the data folder's name), convert and write it."""
    categories = convert(read_examples(split_paths(data, stage, split)), data.resolve().name)
    write_categories(categories, out)
    return categories
