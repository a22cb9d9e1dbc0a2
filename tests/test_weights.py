"""Decision-token loss weights: which tokens they mark, packing keeps them aligned, training
uses them, and the config refuses them where they cannot travel."""

from __future__ import annotations

import json
from pathlib import Path

import fixtures_train
import pytest
from fixtures_train import tiny_config

from toolsft.train.config import ConfigError
from toolsft.train.packing import IGNORE, PackCollator, pack_rows
from toolsft.train.weights import decision_spans, token_weights

tiny_data = fixtures_train.tiny_data
tiny_home = fixtures_train.tiny_home

CALL = (
    '<tool_call>\n{"name": "create_order", "arguments": {"items": [{"product": "air fryer", '
    '"quantity": 2}], "express": true, "max_price": 99.5}}\n</tool_call>'
)


def _marked(text: str) -> list[str]:
    return [text[a:b] for a, b in decision_spans(text)]


def test_spans_are_the_name_every_argument_value_and_what_follows() -> None:
    text = 'Here {"name": "not a call"} ' + CALL + "<|im_end|>"
    assert _marked(text) == [
        '"create_order",',
        '"air fryer",',
        "2}",  # the end of the item: no more keys in it
        "true,",  # another argument follows
        "99.5}",  # no optional argument after it
        "<",  # after </tool_call>: another call, or the end of the turn
    ]


def test_no_call_no_spans() -> None:
    assert _marked('Sorry, I can\'t help with {"name": "x"}.') == []


def test_token_weights_mark_turn_starts_and_values_only_where_labelled() -> None:
    # one token per character; the prompt is unlabelled, then a call turn, then a text turn
    prompt, reply = 'user: {"name": "x"}\n', "ok"
    text = prompt + CALL + "\n" + reply
    mask = [0] * len(prompt) + [1] * len(CALL) + [0] + [1] * len(reply)
    offsets = [(i, i + 1) for i in range(len(text))]
    w = token_weights(offsets, text, mask, 4.0)
    assert len(w) == len(text)
    assert all(x == 0 for x in w[: len(prompt)])  # "x" in the prompt is no label
    assert w[len(prompt)] == 4.0  # "<" of <tool_call>: the call-or-talk decision
    start = text.index('"create_order"')
    assert w[start : start + len('"create_order"')] == [4.0] * len('"create_order"')
    key = text.index('"items"')
    assert w[key : key + len('"items"')] == [1.0] * len('"items"')  # keys are boilerplate
    assert w[len(prompt) + len(CALL)] == 0  # the unlabelled newline between turns
    assert w[-2:] == [4.0, 1.0]  # the text turn: its first token only


def test_packs_carry_each_rows_weights_beside_its_labels() -> None:
    prefix = list(range(100, 130))
    rows = [
        (prefix + [7, 8, 50, 51, 52], [0] * 32 + [1] * 3),
        (prefix + [9, 53, 54], [0] * 31 + [1] * 2),
    ]
    weights = [[0.0] * 32 + [5.0, 1.0, 1.0], [0.0] * 31 + [1.0, 5.0]]
    packs = pack_rows([r[0] for r in rows], [r[1] for r in rows], 512, weights=weights)
    assert len(packs.input_ids) == 1
    labels, w = packs.labels[0], packs.weights[0]
    assert len(w) == len(labels)
    by_token = {
        t: x for t, x, lab in zip(packs.input_ids[0], w, labels, strict=True) if lab != IGNORE
    }
    assert by_token == {50: 5.0, 51: 1.0, 52: 1.0, 53: 1.0, 54: 5.0}
    batch = PackCollator(pad_token_id=0)(
        [
            {
                k: getattr(packs, k)[0]
                for k in ("input_ids", "labels", "position_ids", "segments", "weights")
            },
            {
                "input_ids": [1],
                "labels": [IGNORE],
                "position_ids": [0],
                "segments": [0],
                "weights": [0.0],
            },
        ]
    )
    assert batch["weights"].shape == batch["input_ids"].shape
    assert batch["weights"][1, 1:].sum().item() == 0  # padding weighs nothing


def test_packs_without_weights_have_no_weights_column() -> None:
    packs = pack_rows([[1, 2, 3]], [[0, 1, 1]], 64)
    assert packs.weights == []
    assert "weights" not in packs.to_dataset().column_names


def test_decision_weight_needs_shared_prefix_packs() -> None:
    with pytest.raises(ConfigError, match=r"decision_weight: must be 1 without .*\(3.0\)"):
        tiny_config(decision_weight=3.0).validate()
    with pytest.raises(ConfigError, match=r"decision_weight: must be > 0 \(0\)"):
        tiny_config(decision_weight=0, share_prefix=True).validate()


def test_training_weighs_decision_tokens(tiny_home: Path, tiny_data: Path, tmp_path: Path) -> None:
    """Same rows, same seed: the first step's loss grows with the weight (decision tokens are
    among the labels and none is predicted perfectly), and the packs record it."""
    from toolsft.train.runner import train_stage

    first = {}
    for weight in (1.0, 4.0):
        cfg = tiny_config(
            share_prefix=True,
            batch_size=1,
            decision_weight=weight,
            warmup_ratio=0.0,
            max_val_rows=0,
        )
        res = train_stage(1, tiny_data, tmp_path / str(weight), cfg, tiny_home)
        first[weight] = next(h["loss"] for h in res.metrics["log_history"] if "loss" in h)
        assert json.loads((res.dir / "data.json").read_text())["train_packs"] > 0
    assert first[4.0] > 1.2 * first[1.0]
