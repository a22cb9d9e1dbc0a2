"""Shared-prefix packing: rows whose prompts begin alike train as one sequence.

Rows generated in groups (`gen --show-all --group N`) share their system prompt and tool list,
which is most of every row (about 740 of 860 tokens for commerce stage 1). A pack holds that
prefix once, followed by each row's own suffix. A 4-D attention mask lets every suffix see the
prefix and itself only, and each suffix's position ids go on from where the prefix ends, so every
labelled token gets the logits it would get in its own row: the same loss (up to float rounding)
for a fraction of the tokens.

A pack never shares a labelled token: the shared prefix stops before every row's first
assistant token, and each suffix starts with at least one unlabelled token, so the last token of
one suffix never "predicts" the first label of the next.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import compress, count
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from toolsft.train.tokenize import Encoded

logger = logging.getLogger(__name__)

IGNORE = -100
PAD_SEGMENT = -1


@dataclass
class Packs:
    """Packed sequences: ids, labels (-100 off the assistant mask), positions and segments
    (0: the shared prefix, k: the k-th row's suffix, -1: padding)."""

    input_ids: list[list[int]] = field(default_factory=list)
    labels: list[list[int]] = field(default_factory=list)
    position_ids: list[list[int]] = field(default_factory=list)
    segments: list[list[int]] = field(default_factory=list)
    weights: list[list[float]] = field(default_factory=list)
    """Per-token loss weights, when the rows carry them (`decision_weight`)."""
    rows: list[list[int]] = field(default_factory=list)
    """Which input rows each pack holds (indices into the packed row list)."""

    @property
    def tokens(self) -> int:
        return sum(len(x) for x in self.input_ids)

    def summary(self) -> dict[str, int]:
        """What data.json records about the packs."""
        return {"train_packs": len(self.input_ids), "train_packed_tokens": self.tokens}

    def to_dataset(self) -> Any:
        from datasets import Dataset

        return Dataset.from_dict(
            {
                "input_ids": self.input_ids,
                "labels": self.labels,
                "position_ids": self.position_ids,
                "segments": self.segments,
                **({"weights": self.weights} if self.weights else {}),
            }
        )


def pack_rows(
    input_ids: Sequence[Sequence[int]],
    masks: Sequence[Sequence[int]],
    max_length: int,
    min_share: float = 0.5,
    weights: Sequence[Sequence[float]] = (),
) -> Packs:
    """Greedy packs of rows with a common prompt prefix, each at most `max_length` tokens.

    Rows are sorted by their prompt tokens so rows that share a prefix are neighbours; a row
    joins the open pack while the common prefix stays at least `min_share` of the pack's mean
    row length and the pack still fits. A row that shares nothing becomes a pack of one, which
    is exactly the unpacked row. `weights` (one list per row, or empty) travel with the tokens.
    """
    limits = [_prefix_limit(m) for m in masks]
    order = sorted(range(len(input_ids)), key=lambda i: tuple(input_ids[i][: limits[i]]))
    packs = Packs()
    members: list[int] = []
    shared = 0
    for i in order:
        if members:
            common = min(shared, limits[i], _common(input_ids[i], input_ids[members[0]], shared))
            group = [*members, i]
            lengths = [len(input_ids[j]) for j in group]
            size = common + sum(n - common for n in lengths)
            if common >= min_share * sum(lengths) / len(lengths) and size <= max_length:
                members, shared = group, common
                continue
            _emit(packs, input_ids, masks, members, shared, weights)
        members, shared = [i], limits[i]
    if members:
        _emit(packs, input_ids, masks, members, shared, weights)
    return packs


def pack_stage(train: Encoded, val: Encoded, max_length: int) -> tuple[Packs, Packs]:
    """Pack a stage's encoded train and val rows; log the saving, warn when there is none."""
    packs = (
        pack_rows(train.input_ids, train.assistant_masks, max_length, weights=train.weights),
        pack_rows(val.input_ids, val.assistant_masks, max_length, weights=val.weights),
    )
    n_rows, n_packs = len(train.rows), len(packs[0].input_ids)
    logger.info(
        "shared-prefix packing: %d rows in %d packs, %d -> %d tokens (%.1fx fewer)",
        n_rows,
        n_packs,
        train.tokens,
        packs[0].tokens,
        train.tokens / max(1, packs[0].tokens),
    )
    if n_packs > 0.8 * n_rows:
        logger.warning(
            "share_prefix: few rows share a prompt (%d packs for %d rows); generate the data "
            "with `gen --show-all --group N` so that groups of rows do",
            n_packs,
            n_rows,
        )
    return packs


def _prefix_limit(mask: Sequence[int]) -> int:
    """The longest prefix a row may share: it must stop before the token ahead of its first
    label, so the row's first label is predicted from inside its own suffix."""
    first = next(compress(count(), mask), len(mask))  # the first truthy position, in C
    return max(0, first - 1)


def _common(a: Sequence[int], b: Sequence[int], limit: int) -> int:
    n = min(len(a), len(b), limit)
    if a[:n] == b[:n]:  # the usual case (rows of one group), compared in C
        return n
    k = 0
    while k < n and a[k] == b[k]:
        k += 1
    return k


def _emit(
    packs: Packs,
    input_ids: Sequence[Sequence[int]],
    masks: Sequence[Sequence[int]],
    members: list[int],
    shared: int,
    weights: Sequence[Sequence[float]],
) -> None:
    head = list(input_ids[members[0]][:shared])
    ids, labels = list(head), [IGNORE] * shared
    positions, segments = list(range(shared)), [0] * shared
    for k, j in enumerate(members, start=1):
        tail = input_ids[j][shared:]
        ids += tail
        labels += [t if m else IGNORE for t, m in zip(tail, masks[j][shared:], strict=True)]
        positions += range(shared, shared + len(tail))
        segments += [k] * len(tail)
    packs.input_ids.append(ids)
    packs.labels.append(labels)
    packs.position_ids.append(positions)
    packs.segments.append(segments)
    packs.rows.append(list(members))
    if weights:
        packed = [0.0] * shared  # the shared prefix is never labelled
        for j in members:
            packed += weights[j][shared:]
        packs.weights.append(packed)


def segment_mask(segments: Any) -> Any:
    """[batch, seq] segment ids -> [batch, 1, seq, seq] boolean mask (True: may attend).

    A token sees earlier tokens of the shared prefix (segment 0) and of its own segment;
    padding (segment -1) sees only itself, so no attention row is empty.
    """
    import torch

    q = segments[:, :, None]
    k = segments[:, None, :]
    n = segments.shape[-1]
    causal = torch.ones(n, n, dtype=torch.bool, device=segments.device).tril()
    allowed = ((k == 0) | (k == q)) & (q != PAD_SEGMENT) & causal
    allowed |= torch.eye(n, dtype=torch.bool, device=segments.device)
    return allowed[:, None]


@dataclass
class PackCollator:
    """Pads packs to the batch's longest (right side) and keeps `segments` for the mask,
    which `ToolSFTTrainer.compute_loss` builds; a 4-D mask in the batch would make the
    Trainer count L x L "tokens seen"."""

    pad_token_id: int

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        width = max(len(f["input_ids"]) for f in features)

        def column(key: str, fill: float, dtype: Any = torch.long) -> Any:
            rows = [list(f[key]) + [fill] * (width - len(f[key])) for f in features]
            return torch.tensor(rows, dtype=dtype)

        batch = {
            "input_ids": column("input_ids", self.pad_token_id),
            "labels": column("labels", IGNORE),
            "position_ids": column("position_ids", 0),
            "segments": column("segments", PAD_SEGMENT),
        }
        if "weights" in features[0]:
            batch["weights"] = column("weights", 0.0, torch.float32)
        return batch
