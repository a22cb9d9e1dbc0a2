"""Render and tokenize stage rows ourselves, with the assistant mask (and loss weights).

We tokenize before handing rows to TRL instead of letting `SFTTrainer` do it, because rows
through Arrow get their heterogeneous tool schemas and message keys null-filled (a `tools`
string is fine, but a decoded one is not). `SFTTrainer` accepts a pre-tokenized dataset with
`input_ids` and `assistant_masks`, from which it builds `labels` (-100 off the mask).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from toolsft.io import DataError
from toolsft.train.data import Row
from toolsft.train.weights import plain_weights, row_weights, token_weights

logger = logging.getLogger(__name__)


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
