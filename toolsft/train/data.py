"""Stage data: read JSONL rows, mix in replay, render and tokenize them ourselves.

`check_dataset` runs first: the manifest's hashes, then every row validated (`labels`), so
training never starts on a changed, half-written or invalid dataset.

We tokenize before handing rows to TRL instead of letting `SFTTrainer` do it, because rows
through Arrow get their heterogeneous tool schemas and message keys null-filled (a `tools`
string is fine, but a decoded one is not). `SFTTrainer` accepts a pre-tokenized dataset with
`input_ids` and `assistant_masks`, from which it builds `labels` (-100 off the mask).
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolsft.io import MANIFEST, DataError, sha256_file, sha256_text, verify_dataset
from toolsft.train.labels import check_labels, suite_tools
from toolsft.train.weights import plain_weights, row_weights, token_weights

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


@dataclass
class Encoded:
    """Tokenized rows ready for SFTTrainer, plus what was dropped and why."""

    input_ids: list[list[int]] = field(default_factory=list)
    assistant_masks: list[list[int]] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)
    dropped_too_long: list[str] = field(default_factory=list)
    weights: list[list[float]] = field(default_factory=list)
    """Per-token loss weights (`decision_weight`); empty: the plain loss."""

    @property
    def tokens(self) -> int:
        return sum(len(x) for x in self.input_ids)

    def to_dataset(self) -> Any:
        from datasets import Dataset

        return Dataset.from_dict(
            {"input_ids": self.input_ids, "assistant_masks": self.assistant_masks}
        )


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


def encode(
    tokenizer: Any,
    rows: Sequence[Row],
    template: str,
    max_length: int,
    max_drop_share: float = 1.0,
    decision_weight: float = 1.0,
) -> Encoded:
    """Tokenize each row with the assistant mask; drop (never truncate) rows over max_length.

    Truncation would cut a call or an answer mid-way and teach the model to stop there.
    With `decision_weight` != 1 each row also gets per-token loss weights (`toolsft.train.weights`).
    """
    out = Encoded()
    plain = []
    for row, (ids, mask, w) in zip(
        rows, tokenize_rows(tokenizer, rows, template, decision_weight), strict=True
    ):
        if len(ids) > max_length:
            out.dropped_too_long.append(f"{row.id} ({len(ids)} tokens)")
            continue
        out.input_ids.append(ids)
        out.assistant_masks.append(mask)
        out.rows.append(row)
        if decision_weight != 1:
            if w is None:
                plain.append(row.id)
                w = plain_weights(mask)
            out.weights.append(w)
    if plain:
        logger.warning(
            "decision_weight: %d rows do not re-tokenize from their text (e.g. %s); they keep "
            "the plain loss",
            len(plain),
            plain[0],
        )
    if rows and len(out.dropped_too_long) > max_drop_share * len(rows):
        raise DataError(
            f"{rows[0].source.rsplit(':', 1)[0]}: {len(out.dropped_too_long)}/{len(rows)} rows are "
            f"longer than max_length={max_length} (e.g. {out.dropped_too_long[0]}); raise "
            "--max-length, or render fewer tools per row"
        )
    if out.dropped_too_long:
        logger.warning(
            "dropped %d rows longer than max_length=%d, e.g. %s",
            len(out.dropped_too_long),
            max_length,
            out.dropped_too_long[0],
        )
    return out


def mask_spans(mask: Sequence[int]) -> list[tuple[int, int]]:
    """The [start, end) runs of 1s in an assistant mask: one per assistant turn."""
    spans, start = [], None
    for i, bit in enumerate([*mask, 0]):
        if bit and start is None:
            start = i
        elif not bit and start is not None:
            spans.append((start, i))
            start = None
    return spans


TOKENIZE_BATCH = 512
"""Rows rendered, then tokenized in one call: the tokenizer's Rust side spreads a batch over
every core."""


def tokenize_rows(
    tokenizer: Any, rows: Sequence[Row], template: str, decision_weight: float = 1.0
) -> Iterator[tuple[list[int], list[int], list[float] | None]]:
    """Each row's ids, assistant mask and (`decision_weight` != 1) loss weights: what
    `encode_row` and `row_weights` give (None: the row keeps the plain loss), with each row
    rendered once and tokenized once, in batches, instead of rendered and tokenized twice."""
    weighted = decision_weight != 1
    if not getattr(tokenizer, "is_fast", False):  # no offsets: the reference path, row by row
        for row in rows:
            ids, mask = encode_row(tokenizer, row, template)
            text = render_row(tokenizer, row, template) if weighted else ""
            yield (
                ids,
                mask,
                row_weights(tokenizer, text, ids, mask, decision_weight) if weighted else None,
            )
        return
    for start in range(0, len(rows), TOKENIZE_BATCH):
        rendered = [
            render_with_spans(tokenizer, r, template) for r in rows[start : start + TOKENIZE_BATCH]
        ]
        batch = tokenizer(
            [text for text, _ in rendered],
            add_special_tokens=False,
            return_offsets_mapping=weighted,
        )
        for i, (text, spans) in enumerate(rendered):
            ids = list(batch["input_ids"][i])
            mask = _assistant_mask(batch, i, len(ids), spans)
            w = (
                token_weights(batch["offset_mapping"][i], text, mask, decision_weight)
                if weighted
                else None
            )
            yield ids, mask, w


def render_with_spans(tokenizer: Any, row: Row, template: str) -> tuple[str, list[tuple[int, int]]]:
    """The row's text as `apply_chat_template` renders it, and the character spans of its
    `{% generation %}` blocks (the assistant turns)."""
    from transformers.utils.chat_template_utils import render_jinja_template

    render: Any = render_jinja_template  # annotated as returning str; it returns the pair
    tools = row.tools or None
    texts, spans = render(
        conversations=[row.messages],
        tools=tools,
        chat_template=tokenizer.get_chat_template(template, tools),
        return_assistant_tokens_mask=True,
        **tokenizer.special_tokens_map,
    )
    return texts[0], spans[0]


def _assistant_mask(batch: Any, i: int, n: int, spans: Sequence[tuple[int, int]]) -> list[int]:
    """Token mask of the character `spans`, computed as `apply_chat_template` computes it."""
    mask = [0] * n
    for a, b in spans:
        first, last = batch.char_to_token(i, a), batch.char_to_token(i, b - 1)
        if first is None:
            break
        stop = last + 1 if last else n
        mask[first:stop] = [1] * (stop - first)
    return mask


def encode_row(tokenizer: Any, row: Row, template: str) -> tuple[list[int], list[int]]:
    enc = tokenizer.apply_chat_template(
        row.messages,
        tools=row.tools or None,
        chat_template=template,
        tokenize=True,
        return_dict=True,
        return_assistant_tokens_mask=True,
    )
    return list(enc["input_ids"]), list(enc["assistant_masks"])


def render_row(tokenizer: Any, row: Row, template: str) -> str:
    """The text `encode_row` tokenizes."""
    return str(
        tokenizer.apply_chat_template(
            row.messages, tools=row.tools or None, chat_template=template, tokenize=False
        )
    )


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
