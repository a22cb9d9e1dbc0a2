"""Stage data: read JSONL rows, check them, mix in replay (`toolsft.train.tokenize` encodes).

`check_dataset` runs first: the manifest's hashes, then every row validated (`labels`), so
training never starts on a changed, half-written or invalid dataset.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolsft.io import DataError, sha256_file, sha256_text
from toolsft.manifest import MANIFEST, verify_dataset
from toolsft.train.labels import check_labels, suite_tools

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Row:
    """One conversation as read from disk, with where it came from."""

    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]]
    meta: dict[str, Any]
    source: str  # "<file>:<line>"
    stage: int

    @property
    def id(self) -> str:
        return str(self.meta.get("id", self.source))


def stage_file(data: Path, stage: int, split: str) -> Path:
    return Path(data) / f"stage{stage}" / f"{split}.jsonl"


def check_dataset(
    data: Path, stages: Sequence[int], require_manifest: bool = True
) -> dict[str, Any] | None:
    """What `train` checks before anything loads: the manifest's hashes (a changed, missing or
    extra file is refused), then every row that stages up to max(`stages`) train on, their own
    and the replayed ones, train and val, validated against the suite's tools. The first
    invalid row is named. Returns the manifest (None: none, and `require_manifest` is off)."""
    data = Path(data)
    manifest = verify_dataset(data, require_manifest)
    suite = suite_tools(manifest, data / MANIFEST) if manifest else None
    for s in range(1, max(stages) + 1):
        read_rows(stage_file(data, s, "train"), s, suite=suite)
        read_rows(stage_file(data, s, "val"), s, required=False, suite=suite)
    return manifest


def read_rows(
    path: Path, stage: int, required: bool = True, suite: Mapping[str, Any] | None = None
) -> list[Row]:
    """Rows of one JSONL file; `tools`/`meta` JSON strings decoded, Arrow's nulls undone.

    Every row is validated: its labels (assistant turns) must render and parse back unchanged
    and their calls validate against the tools the row shows; with `suite` (name ->
    parameters), those tools must also be the suite's own. The first bad row is an error
    naming file:line: field (value)."""
    if not path.is_file():
        if required:
            raise DataError("not found (expected rows from `toolsft gen`)", file=path)
        return []
    rows = []
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                row = _parse_line(line, f"{path}:{n}", stage)
                check_labels(row.source, row.messages, row.tools, suite)
                rows.append(row)
    return rows


def _parse_line(line: str, where: str, stage: int) -> Row:
    try:
        obj = json.loads(line)
        # Invalid UTF-8 (read as surrogate escapes) or a lone surrogate escaped in the JSON
        # cannot be tokenized: refuse the row here rather than crash mid-training.
        json.dumps(obj, ensure_ascii=False).encode("utf-8")
    except json.JSONDecodeError as exc:
        raise DataError(f"{where}: invalid JSON: {exc}") from exc
    except UnicodeEncodeError as exc:
        bad = exc.object[exc.start : exc.end]
        raise DataError(f"{where}: not valid UTF-8 text ({bad!r})") from exc
    except RecursionError as exc:
        raise DataError(f"{where}: JSON nested too deeply") from exc
    if not isinstance(obj, dict) or not isinstance(obj.get("messages"), list):
        raise DataError(f"{where}: field 'messages' must be a list of chat messages")
    tools = _json_field(obj.get("tools", "[]"), where, "tools", list)
    meta = _json_field(obj.get("meta", "{}"), where, "meta", dict)
    messages = [_clean_message(m, f"{where}: messages[{i}]") for i, m in enumerate(obj["messages"])]
    if not any(m["role"] == "assistant" for m in messages):
        raise DataError(f"{where}: no assistant message to train on")
    return Row(messages, tools, meta, where, stage)


def _json_field(value: Any, where: str, name: str, kind: type) -> Any:
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else kind()
        except json.JSONDecodeError as exc:
            raise DataError(f"{where}: field {name!r} is not valid JSON: {exc}") from exc
    if value is None:
        value = kind()
    if not isinstance(value, kind):
        raise DataError(
            f"{where}: field {name!r} must be a JSON {kind.__name__}, got {type(value).__name__}"
        )
    return value


def _clean_message(msg: Any, where: str) -> dict[str, Any]:
    """Drop null keys; decode call arguments so every template renders canonical JSON."""
    if not isinstance(msg, Mapping) or msg.get("role") not in (
        "system",
        "user",
        "assistant",
        "tool",
    ):
        raise DataError(
            f"{where}: not a chat message with role system/user/assistant/tool: {msg!r:.120}"
        )
    out = {k: v for k, v in msg.items() if v is not None}
    out.setdefault("content", "")
    if out.get("tool_calls"):
        if not isinstance(out["tool_calls"], list):
            raise DataError(f"{where}.tool_calls: not a list ({out['tool_calls']!r:.80})")
        out["tool_calls"] = [
            _decode_call(c, f"{where}.tool_calls[{i}]") for i, c in enumerate(out["tool_calls"])
        ]
    else:
        out.pop("tool_calls", None)
    return out


def _decode_call(call: Any, where: str) -> dict[str, Any]:
    fn = call.get("function") if isinstance(call, Mapping) else None
    if not isinstance(fn, Mapping):
        raise DataError(f"{where}.function: missing or not an object ({call!r:.80})")
    fn = dict(fn)
    if not isinstance(fn.get("name"), str):
        raise DataError(f"{where}.function.name: missing or not a string")
    args = fn.get("arguments", {})
    if isinstance(args, str):
        try:
            args = json.loads(args) if args.strip() else {}
        except json.JSONDecodeError as exc:
            raise DataError(f"{where}.function.arguments: not JSON: {args[:80]!r}") from exc
    if not isinstance(args, dict):
        raise DataError(f"{where}.function.arguments: must be a JSON object, got {args!r:.80}")
    fn["arguments"] = args
    return {**{k: v for k, v in call.items() if v is not None}, "type": "function", "function": fn}


def mix_replay(
    current: Sequence[Row],
    earlier: Sequence[Row],
    share: float,
    seed: int,
    by_prompt: bool = False,
) -> list[Row]:
    """Current rows plus replay rows from earlier stages, so replay is `share` of the result.

    Replay rows are sampled without replacement (seeded); if earlier stages have fewer rows than
    asked for, all of them are used. The result is shuffled so every batch sees both.
    `by_prompt` samples whole groups of rows with the same system prompt and tools, so
    shared-prefix packing can still pack the replayed rows together.
    """
    rng = random.Random(seed)
    want = round(len(current) * share / (1 - share)) if share > 0 else 0
    replay = (
        _sample_groups(earlier, want, rng)
        if by_prompt
        else rng.sample(list(earlier), min(want, len(earlier)))
    )
    if want > len(earlier):
        logger.warning("replay: wanted %d earlier rows, only %d exist", want, len(earlier))
    mixed = list(current) + replay
    rng.shuffle(mixed)
    return mixed


def _sample_groups(rows: Sequence[Row], want: int, rng: random.Random) -> list[Row]:
    groups: dict[str, list[Row]] = {}
    for row in rows:
        system = [m.get("content") for m in row.messages if m.get("role") == "system"]
        key = json.dumps([system, row.tools], sort_keys=True, ensure_ascii=False)
        groups.setdefault(key, []).append(row)
    picked: list[Row] = []
    for key in rng.sample(sorted(groups), len(groups)):
        if len(picked) >= want:
            break
        picked += groups[key][: want - len(picked)]
    return picked


def cap(rows: Sequence[Row], limit: int | None, seed: int) -> list[Row]:
    """At most `limit` rows, a seeded sample that keeps file order (None: all)."""
    if limit is None or len(rows) <= limit:
        return list(rows)
    keep = sorted(random.Random(seed).sample(range(len(rows)), limit))
    return [rows[i] for i in keep]


file_sha256 = sha256_file  # lineage hashes of the stage files (toolsft.train.runner)


def manifest_hash(data: Path) -> dict[str, Any]:
    """The data's identity for lineage: the manifest's suite hash and the whole file's sha256."""
    path = Path(data) / "manifest.json"
    if not path.is_file():
        logger.warning("%s not found: lineage will hash the stage files only", path)
        return {"manifest": None}
    text = path.read_text(encoding="utf-8")
    try:
        suite_hash = json.loads(text).get("suite_hash")
    except (json.JSONDecodeError, AttributeError):
        suite_hash = None
    return {
        "manifest": str(path),
        "manifest_sha256": sha256_text(text),
        "suite_hash": suite_hash,
    }
