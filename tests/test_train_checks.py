"""Stage data, the pre-training checks, and where the loss falls."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

import fixtures_train
import pytest
from fixtures_train import make_row, tiny_config

from toolsft.chat.template import CHAT_TEMPLATE
from toolsft.train.checks import CheckError, check_masks, check_parity
from toolsft.train.data import DataError, Row, mix_replay, read_rows
from toolsft.train.tokenize import encode

# Shared fixtures (defined once in tests/fixtures_train.py).
tiny_data = fixtures_train.tiny_data
tiny_home = fixtures_train.tiny_home

NO_MARKERS = CHAT_TEMPLATE.replace("{%- generation -%}", "").replace("{%- endgeneration -%}", "")
# The end-of-turn token moved outside the generation block: the model would never learn to stop.
EOT_OUTSIDE = CHAT_TEMPLATE.replace(
    "{{- '<|im_end|>' -}}{%- endgeneration -%}", "{%- endgeneration -%}{{- '<|im_end|>' -}}"
)
# Calls rendered in another dialect than the one our parser reads.
OTHER_DIALECT = CHAT_TEMPLATE.replace(
    '\'<tool_call>\\n{"name": "\'', '\'<function_call>{"name": "\''
)


@pytest.fixture(scope="module")
def tokenizer(tiny_home: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_home / "models" / "tiny-random")


@pytest.fixture(scope="module")
def rows(tiny_data: Path) -> list[Row]:
    return read_rows(tiny_data / "stage3" / "train.jsonl", 3)


def test_rows_decode_json_strings_and_undo_arrow_nulls(tmp_path: Path) -> None:
    row = make_row(2, "train", 0, random.Random(0))
    row["messages"][1]["tool_calls"] = None  # what Arrow writes for a key a message never had
    path = tmp_path / "train.jsonl"
    path.write_text(json.dumps(row) + "\n")
    (got,) = read_rows(path, 2)
    assert isinstance(got.tools, list) and got.tools[0]["type"] == "function"
    assert "tool_calls" not in got.messages[1]
    assert isinstance(got.messages[2]["tool_calls"][0]["function"]["arguments"], dict)


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda r: r.update(tools="[not json"), "field 'tools' is not valid JSON"),
        (lambda r: r.update(meta="[]"), "field 'meta' must be a JSON dict"),
        (
            lambda r: r["messages"][2]["tool_calls"][0]["function"].update(arguments="{x"),
            r"messages\[2\].tool_calls\[0\].function.arguments: not JSON",
        ),
        (lambda r: r.update(messages=r["messages"][:2]), "no assistant message"),
        (lambda r: r["messages"][1].update(role="robot"), r"messages\[1\]: not a chat message"),
    ],
)
def test_bad_rows_name_file_line_and_field(tmp_path: Path, mutate: Any, match: str) -> None:
    row = make_row(2, "train", 0, random.Random(0))
    mutate(row)
    path = tmp_path / "train.jsonl"
    path.write_text("\n" + json.dumps(row) + "\n")
    with pytest.raises(DataError, match=match) as err:
        read_rows(path, 2)
    assert f"{path}:2" in str(err.value)


def test_replay_share(rows: list[Row]) -> None:
    earlier = [Row(r.messages, r.tools, {"id": f"old{i}"}, "x", 1) for i, r in enumerate(rows)]
    mixed = mix_replay(rows[:16], earlier, 0.2, seed=0)
    assert len(mixed) == 20 and sum(r.stage == 1 for r in mixed) == 4
    assert mix_replay(rows[:16], earlier, 0.2, seed=0) == mixed  # seeded
    assert len(mix_replay(rows[:16], earlier[:2], 0.5, seed=0)) == 18  # capped by what exists


def test_long_rows_are_dropped_not_truncated(tokenizer: Any, rows: list[Row]) -> None:
    lengths = sorted(len(encode(tokenizer, [r], CHAT_TEMPLATE, 10**6).input_ids[0]) for r in rows)
    cut = lengths[-2]  # exactly one row is longer (if lengths differ at the top)
    enc = encode(tokenizer, rows, CHAT_TEMPLATE, cut)
    assert all(len(ids) <= cut for ids in enc.input_ids)
    assert len(enc.rows) + len(enc.dropped_too_long) == len(rows)
    with pytest.raises(DataError, match="longer than max_length=64"):
        encode(tokenizer, rows, CHAT_TEMPLATE, 64, max_drop_share=0.1)


def test_checks_pass_on_gold_rows(tokenizer: Any, rows: list[Row]) -> None:
    enc = encode(tokenizer, rows, CHAT_TEMPLATE, 4096)
    check_masks(tokenizer, enc, "stage3")
    assert check_parity(tokenizer, rows, CHAT_TEMPLATE) >= len(rows)


def test_mask_check_fires_without_generation_markers(tokenizer: Any, rows: list[Row]) -> None:
    enc = encode(tokenizer, rows, NO_MARKERS, 4096)
    assert not any(any(m) for m in enc.assistant_masks)  # what TRL #4879 trains on silently
    with pytest.raises(CheckError, match="assistant mask is empty .*generation"):
        check_masks(tokenizer, enc, "stage3")


def test_mask_check_fires_when_end_of_turn_is_not_trained(tokenizer: Any, rows: list[Row]) -> None:
    enc = encode(tokenizer, rows, EOT_OUTSIDE, 4096)
    with pytest.raises(CheckError, match="end-of-turn"):
        check_masks(tokenizer, enc, "stage3")


def test_parity_check_fires_on_another_call_dialect(tokenizer: Any, rows: list[Row]) -> None:
    with pytest.raises(CheckError, match="does not parse back to the gold calls"):
        check_parity(tokenizer, rows, OTHER_DIALECT)


def test_cli_refuses_a_template_without_markers(
    tiny_home: Path, tiny_data: Path, tmp_path: Path
) -> None:
    from click.testing import CliRunner

    from toolsft.cli.main import cli

    model = tmp_path / "model"
    shutil.copytree(tiny_home / "models" / "tiny-random", model)
    (model / "chat_template.jinja").write_text(NO_MARKERS)
    res = CliRunner().invoke(
        cli,
        [
            "train",
            "--stage",
            "1",
            "--data",
            str(tiny_data),
            "--out",
            str(tmp_path / "run"),
            "--model",
            str(model),
            "--chat-template",
            "model",
        ],
        env={"TOOLSFT_HOME": str(tiny_home)},
    )
    assert res.exit_code == 2, res.output  # a user error under the CLI's contract
    assert "Traceback" not in res.output
    assert "assistant mask is empty" in res.output and "generation" in res.output
    assert not (tmp_path / "run" / "stage1" / "run.json").exists()


def test_loss_covers_only_assistant_tokens(
    tiny_home: Path, tiny_data: Path, tmp_path: Path
) -> None:
    """Labels are -100 except on assistant tokens; the compact CPU loss equals TRL's."""
    import torch

    from toolsft.train.curriculum import StagePlan
    from toolsft.train.device import detect, resolve_auto
    from toolsft.train.runner import _load_tokenizer, _make_trainer, prepare_data

    cfg = resolve_auto(tiny_config(lora_dropout=0.0), detect())
    base = tiny_home / "models" / "tiny-random"
    tok = _load_tokenizer(base)
    plan = StagePlan(3, tmp_path / "stage3", None, ())
    prepared = prepare_data(plan, tiny_data, cfg, tok, CHAT_TEMPLATE)
    trainer, _ = _make_trainer(plan, cfg, detect(), base, tok, prepared, None, [])
    by_ids = {
        tuple(i): m
        for i, m in zip(prepared.train.input_ids, prepared.train.assistant_masks, strict=True)
    }
    for ex in trainer.train_dataset:
        mask = by_ids[tuple(ex["input_ids"])]
        assert ex["labels"] == [
            t if m else -100 for t, m in zip(ex["input_ids"], mask, strict=True)
        ]
        trained = tok.decode([t for t in ex["labels"] if t != -100])
        assert "<|im_start|>" not in trained and "<tools>" not in trained
        assert trained.endswith("<|im_end|>")
    batch = next(iter(trainer.get_train_dataloader()))
    trainer.model.eval()
    with torch.no_grad():
        trainer.compact_lm_head = True
        compact = trainer.compute_loss(trainer.model, dict(batch))
        trainer.compact_lm_head = False
        fused = trainer.compute_loss(trainer.model, dict(batch))
    assert torch.allclose(compact, fused, rtol=1e-4), (compact, fused)
