"""BFCL (Berkeley Function Calling Leaderboard) data: load a category, speak its dialect.

BFCL files are JSON Lines: `BFCL_v4_<category>.json` holds `{id, question, function}` and
`possible_answer/BFCL_v4_<category>.json` holds `{id, ground_truth}`. Function docs use
BFCL's own type names (`dict`, `float`, `tuple`, `any`); `to_json_schema` turns them into
JSON Schema so any toolsft engine can serve them as ordinary `ToolSpec`s, while the entry
keeps the original docs because the checker's rules are written against the dialect.

BFCL names may contain dots (`math.factorial`). BFCL scores in two name modes, and so do
we: prompt-style models must answer with the names as given; FC models are shown every dot
as an underscore and must answer with that spelling (`underscore_to_dot`, see
`toolsft.eval.bfcl_checker`). The other spelling fails in each mode, as in BFCL.
`BfclEntry.tools(underscore_to_dot=True)` serves the FC spelling.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolsft.eval.bfcl_checker import check, check_undecodable, checker_kind, fc_name
from toolsft.eval.bfcl_values import BfclDocError, Verdict
from toolsft.types import ToolCall, ToolSpec

log = logging.getLogger(__name__)

PREFIX = "BFCL_v4_"
ANSWER_DIR = "possible_answer"
_TYPE_TO_JSON = {"dict": "object", "float": "number", "tuple": "array"}
_OMIT = object()


class BfclDataError(BfclDocError):
    """A BFCL or predictions file is missing or malformed; the message names file and line."""


@dataclass(frozen=True)
class BfclEntry:
    """One BFCL test entry; `ground_truth` is None for categories scored without answers."""

    id: str
    question: tuple[tuple[Mapping[str, Any], ...], ...]
    functions: tuple[Mapping[str, Any], ...]
    ground_truth: tuple[Mapping[str, Mapping[str, list[Any]]], ...] | None = None

    def messages(self) -> list[dict[str, Any]]:
        """The first turn's messages (all that single-turn categories have)."""
        return [dict(m) for m in self.question[0]] if self.question else []

    def name_map(self) -> dict[str, str]:
        """Original name -> the name BFCL shows an FC model (dots written as underscores)."""
        return {f["name"]: fc_name(f["name"]) for f in self.functions}

    def tools(self, *, underscore_to_dot: bool = False) -> tuple[ToolSpec, ...]:
        """The function docs as JSON-Schema `ToolSpec`s, with FC names if asked."""
        names = self.name_map() if underscore_to_dot else {}
        return tuple(to_toolspec(f, name=names.get(f["name"], f["name"])) for f in self.functions)

    def check(
        self, category: str, calls: Sequence[ToolCall], *, underscore_to_dot: bool = False
    ) -> Verdict:
        """Score calls with BFCL's rules for `category`, in the given name mode."""
        return check(
            category,
            self.functions,
            calls,
            self.ground_truth,
            underscore_to_dot=underscore_to_dot,
        )


# --- files -----------------------------------------------------------------------------


def category_path(folder: Path | str, category: str) -> Path:
    return Path(folder) / f"{PREFIX}{category}.json"


def answer_path(folder: Path | str, category: str) -> Path:
    return Path(folder) / ANSWER_DIR / f"{PREFIX}{category}.json"


def list_categories(folder: Path | str) -> list[str]:
    """Categories present in a BFCL data folder."""
    return sorted(p.name[len(PREFIX) : -len(".json")] for p in Path(folder).glob(f"{PREFIX}*.json"))


def needs_answers(category: str) -> bool:
    """(Ir)relevance categories are scored on whether a call was made, with no answers."""
    return checker_kind(category) not in ("irrelevance", "relevance")


def read_jsonl(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line; the last line may lack a newline."""
    if path.exists() and not path.is_file():  # a folder, FIFO or device: reading would hang
        raise BfclDataError("not a regular file", file=path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise BfclDataError(f"cannot read ({exc.strerror or exc})", file=path) from exc
    except UnicodeDecodeError as exc:
        raise BfclDataError(
            f"not UTF-8 text ({exc.reason} at byte {exc.start})", file=path
        ) from exc
    rows = []
    # split("\n"), not splitlines(): JSON strings may hold a raw U+2028 or U+0085.
    for lineno, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        obj = _json_line(line, path, lineno)
        if not isinstance(obj, dict):
            raise BfclDataError(
                f"expected an object, got {type(obj).__name__}", file=path, where=lineno
            )
        rows.append((lineno, obj))
    return rows


def _json_line(line: str, path: Path, lineno: int) -> Any:
    try:
        return json.loads(line)
    except json.JSONDecodeError as exc:
        raise BfclDataError(
            f"invalid JSON ({exc.msg})", file=path, where=lineno, value=line
        ) from exc
    except (ValueError, RecursionError) as exc:  # over-long integers, too deep nesting
        raise BfclDataError(f"unreadable JSON ({exc})", file=path, where=lineno) from exc


def load_category(folder: Path | str, category: str) -> list[BfclEntry]:
    """All entries of a category, with ground truth joined by id where the category has it."""
    path = category_path(folder, category)
    if not path.is_file():
        have = ", ".join(list_categories(folder)) or "none"
        raise BfclDataError(f"no such BFCL category file (categories here: {have})", file=path)
    answers = _load_answers(folder, category) if needs_answers(category) else {}
    entries = []
    for lineno, obj in read_jsonl(path):
        entry_id = _field(obj, "id", str, path, lineno)
        functions = _field(obj, "function", list, path, lineno)
        question = _field(obj, "question", list, path, lineno)
        truth = None
        if needs_answers(category):
            if entry_id not in answers:
                raise BfclDataError(
                    f"no answer for id {entry_id!r} (from {path}:{lineno})",
                    file=answer_path(folder, category),
                )
            truth = tuple(answers[entry_id])
        turns = tuple(tuple(turn) for turn in question)
        entries.append(BfclEntry(entry_id, turns, tuple(functions), truth))
    log.debug("loaded %d entries of %s from %s", len(entries), category, path)
    return entries


def _load_answers(folder: Path | str, category: str) -> dict[str, list[Any]]:
    path = answer_path(folder, category)
    if not path.is_file():
        raise BfclDataError(f"missing possible-answer file for category {category!r}", file=path)
    return {
        _field(obj, "id", str, path, n): _field(obj, "ground_truth", list, path, n)
        for n, obj in read_jsonl(path)
    }


def _field(obj: Mapping[str, Any], key: str, kind: type, path: Path, lineno: int) -> Any:
    value = obj.get(key)
    if not isinstance(value, kind):
        raise BfclDataError(
            f"field {key!r} must be a {kind.__name__}", file=path, where=lineno, value=value
        )
    return value


# --- dialect -----------------------------------------------------------------------------


def to_json_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """BFCL dialect -> JSON Schema: dict->object, float->number, tuple->array, any->no type.

    Recurses into properties, items and additionalProperties. BFCL's non-standard
    `optional: true` is dropped (`required` already says it); other keywords are kept.
    """
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "type":
            converted = _json_type(value)
            if converted is not None:
                out["type"] = converted
        elif key == "properties" and isinstance(value, Mapping):
            out[key] = {p: to_json_schema(s) for p, s in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, Mapping):
            out[key] = to_json_schema(value)
        elif key != "optional":
            out[key] = value
    return out


def _json_type(value: Any) -> Any:
    if isinstance(value, list):
        kept = [_TYPE_TO_JSON.get(t, t) for t in value if t != "any"]
        return kept if len(kept) == len(value) else None
    return None if value == "any" else _TYPE_TO_JSON.get(value, value)


def to_toolspec(doc: Mapping[str, Any], *, name: str | None = None) -> ToolSpec:
    """One BFCL function doc as a JSON-Schema `ToolSpec` (keeping its name unless given)."""
    params = to_json_schema(doc.get("parameters", {"type": "dict", "properties": {}}))
    params.setdefault("type", "object")
    return ToolSpec(name or doc["name"], doc.get("description", ""), params)


# --- gold and predictions ------------------------------------------------------------------


def gold_calls(entry: BfclEntry) -> list[ToolCall]:
    """A prediction built from the first acceptable value of every gold parameter.

    Parameters whose only acceptable value is "" are omitted; so are parameters the doc does
    not declare when "" is acceptable (BFCL data has a few, e.g. parallel_multiple_26's
    `type`, which belongs to a nested item; emitting it would be an unexpected parameter).
    """
    docs = {f["name"]: f for f in entry.functions}
    calls = []
    for answer in entry.ground_truth or ():
        name, params = next(iter(answer.items()))
        props = docs.get(name, {}).get("parameters", {}).get("properties", {})
        args = {}
        for param, acceptable in params.items():
            if param not in props and "" in acceptable:
                continue
            value = _gold_value(acceptable, props.get(param, {}))
            if value is not _OMIT:
                args[param] = value
        calls.append(ToolCall(name, args))
    return calls


def _gold_value(acceptable: list[Any], schema: Mapping[str, Any]) -> Any:
    """First non-"" value; dict answers (and lists of them) hold lists of values per key."""
    value = next((v for v in acceptable if v != ""), _OMIT)
    kind = schema.get("type")
    if kind == "dict" and isinstance(value, Mapping):
        return _gold_dict(value)
    item_kind = (schema.get("items") or {}).get("type")
    if kind in ("array", "tuple") and item_kind == "dict" and isinstance(value, list):
        return [_gold_dict(v) if isinstance(v, Mapping) else v for v in value]
    return value


def _gold_dict(answer: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for key, options in answer.items():
        value = next((v for v in options if v != ""), _OMIT)
        if value is not _OMIT:
            out[key] = value
    return out


@dataclass(frozen=True)
class Prediction:
    """One line of a predictions file: an entry id and the calls made (empty: no call).

    `decode_error` says why the calls could not be decoded (arguments that are not JSON);
    such a prediction is scored as BFCL scores a decoding failure.
    """

    id: str
    calls: tuple[ToolCall, ...]
    lineno: int = 0
    decode_error: str = ""


def read_predictions(path: Path | str) -> list[Prediction]:
    """Parse `{"id", "calls": [{"name", "arguments"}]}` lines, in file order.

    `arguments` may be an object or a JSON string (OpenAI's wire form, decoded as BFCL's FC
    handlers do: with `json.loads`, so an empty string does not decode). A call that is not an
    object with a `name` is a file error; what a model put in it is scored, never fatal.
    """
    path = Path(path)
    preds = []
    for lineno, obj in read_jsonl(path):
        pred_id = _field(obj, "id", str, path, lineno)
        raw_calls = _field(obj, "calls", list, path, lineno)
        calls, errors = [], []
        for i, raw in enumerate(raw_calls):
            fn = raw.get("function", raw) if isinstance(raw, Mapping) else None
            if not isinstance(fn, Mapping) or "name" not in fn:
                where = f"{lineno}:calls[{i}]"
                raise BfclDataError(
                    "a call must be an object with a 'name'", file=path, where=where, value=raw
                )
            args, error = _decode_arguments(fn.get("arguments", {}))
            if error:
                errors.append(f"calls[{i}].arguments: {error}")
            calls.append(ToolCall(fn["name"], args))
        preds.append(Prediction(pred_id, tuple(calls), lineno, "; ".join(errors)))
    return preds


def _decode_arguments(raw: Any) -> tuple[Any, str]:
    """(arguments, '') or (None, why they are not JSON); non-string values pass through."""
    if not isinstance(raw, str):
        return raw, ""
    try:
        return json.loads(raw), ""
    except (ValueError, RecursionError) as exc:
        return None, f"not JSON ({str(exc)[:200]})"


def score_predictions(
    category: str,
    entries: Sequence[BfclEntry],
    predictions: Sequence[Prediction],
    source: str = "",
    *,
    underscore_to_dot: bool = False,
) -> list[Verdict]:
    """One verdict per prediction, in order; an id unknown to the category is an error."""
    by_id = {e.id: e for e in entries}
    verdicts = []
    for pred in predictions:
        entry = by_id.get(pred.id)
        if entry is None:
            raise BfclDataError(
                f"id not in BFCL category {category!r}",
                file=source,
                where=pred.lineno,
                value=pred.id,
            )
        verdicts.append(score_one(category, entry, pred, underscore_to_dot))
    return verdicts


def score_one(
    category: str, entry: BfclEntry, pred: Prediction, underscore_to_dot: bool = False
) -> Verdict:
    """One prediction's verdict; a value too deep to compare fails the row, not the run."""
    if pred.decode_error:
        return check_undecodable(category, pred.decode_error)
    try:
        return entry.check(category, pred.calls, underscore_to_dot=underscore_to_dot)
    except RecursionError:
        return Verdict(False, "value_error:others", "A value is nested too deeply to compare.")
