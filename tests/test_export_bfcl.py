"""export-bfcl: generated rows -> BFCL files that BFCL's rules (our checker) score right."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from toolsft.cli.bfcl import export_bfcl
from toolsft.eval.bfcl import load_category
from toolsft.eval.bfcl_checker import check
from toolsft.gen.export_bfcl import (
    answer_for,
    category_names,
    convert,
    export,
    schema_to_bfcl,
    tool_to_bfcl,
)
from toolsft.types import Example, Expected, ToolCall, ToolSpec

ORDER = ToolSpec(
    "place_order",
    "Place an order.",
    {
        "type": "object",
        "properties": {
            "sku": {"type": "string"},
            "qty": {"type": "integer"},
            "price": {"type": "number"},
            "note": {"type": ["string", "null"]},
            "address": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "zip": {"type": "string"}},
                "required": ["city"],
            },
            "lines": {
                "type": "array",
                "items": {"type": "object", "properties": {"sku": {"type": "string"}}},
            },
        },
        "required": ["sku", "qty"],
    },
)
TRACK = ToolSpec(
    "track_order",
    "Track an order.",
    {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]},
)
TRACK_CALL = ToolCall("track_order", {"order_id": "o1"})
SYSTEM = {"role": "system", "content": "You are the shop assistant."}


def example(row_id: str, user: str, calls: list[ToolCall], tools: tuple[ToolSpec, ...]) -> Example:
    prompt = [SYSTEM, {"role": "user", "content": user}]
    if calls:
        target = {
            "role": "assistant",
            "content": "",
            "tool_calls": [c.to_openai(f"call_{i}") for i, c in enumerate(calls)],
        }
    else:
        target = {"role": "assistant", "content": "Sorry, I can only help with orders."}
    meta = {
        "id": row_id,
        "prompt_len": len(prompt),
        "expected": Expected(tuple(calls), (), None, False).to_json(),
    }
    return Example((*prompt, target), tools, meta)


ONE = ToolCall(
    "place_order",
    {"sku": "A-1", "qty": 2, "price": 9.5, "address": {"city": "Paris"}, "lines": [{"sku": "B"}]},
)
TWO = [ToolCall("track_order", {"order_id": "o1"}), ToolCall("track_order", {"order_id": "o2"})]
ROWS = [
    example("shop-s1-test-000000", "Order two A-1 to Paris.", [ONE], (ORDER, TRACK)),
    example("shop-s1-test-000001", "Track o1 and o2.", TWO, (TRACK,)),
    example("shop-s1-test-000002", "What's the weather?", [], (ORDER, TRACK)),
]


def write_dataset(root: Path, stages: dict[int, list[Example]]) -> Path:
    for stage, rows in stages.items():
        path = root / f"stage{stage}" / "test.jsonl"
        path.parent.mkdir(parents=True)
        path.write_text("".join(json.dumps(e.to_row()) + "\n" for e in rows))
    return root


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_schema_to_bfcl_dialect() -> None:
    doc = tool_to_bfcl(ORDER)
    props = doc["parameters"]["properties"]
    assert doc["parameters"]["type"] == "dict"
    assert props["price"]["type"] == "float"
    assert props["note"]["type"] == "string"
    assert props["address"]["type"] == "dict"
    assert props["address"]["properties"]["city"] == {"type": "string"}
    assert props["lines"]["items"]["type"] == "dict"
    assert schema_to_bfcl({}) == {"type": "any"}
    assert tool_to_bfcl(ToolSpec("f", "", {}))["parameters"] == {
        "type": "dict",
        "properties": {},
        "required": [],
    }


def test_answers_wrap_values_and_mark_absent_params_optional() -> None:
    assert answer_for(ONE, ORDER) == {
        "place_order": {
            "sku": ["A-1"],
            "qty": [2],
            "price": [9.5],
            "address": [{"city": ["Paris"], "zip": [""]}],
            "lines": [[{"sku": ["B"]}]],
            "note": [""],
        }
    }


def test_convert_splits_by_call_count_and_keeps_system() -> None:
    cats = {c.name: c for c in convert(ROWS, "shop")}
    assert set(cats) == {
        "toolsft_shop_multiple",
        "toolsft_shop_parallel",
        "toolsft_shop_irrelevance",
    }
    single = cats["toolsft_shop_multiple"]
    assert single.entries[0]["id"] == "toolsft_shop_multiple_0"
    assert single.entries[0]["toolsft_id"] == "shop-s1-test-000000"
    assert single.entries[0]["question"] == [[SYSTEM, ROWS[0].messages[1]]]
    assert [f["name"] for f in single.entries[0]["function"]] == ["place_order", "track_order"]
    assert cats["toolsft_shop_irrelevance"].answers is None
    assert len(cats["toolsft_shop_parallel"].answers or []) == 1


def test_category_names() -> None:
    assert category_names("My-Shop")["single"] == "toolsft_my_shop_multiple"
    with pytest.raises(ValueError, match="relevance"):
        category_names("irrelevance_suite")


def test_gold_call_missing_from_tools_is_an_error() -> None:
    row = example("bad-1", "x", [ToolCall("nope", {})], (TRACK,))
    with pytest.raises(ValueError, match="bad-1: gold call 'nope'"):
        convert([row], "shop")


def test_export_round_trip_scores_with_bfcl_rules(tmp_path: Path) -> None:
    data = write_dataset(tmp_path / "shop", {1: ROWS})
    out = tmp_path / "bfcl"
    export(data, "all", "test", out)
    single = load_category(out, "toolsft_shop_multiple")
    parallel = load_category(out, "toolsft_shop_parallel")
    irrelevance = load_category(out, "toolsft_shop_irrelevance")
    assert not (out / "possible_answer" / "BFCL_v4_toolsft_shop_irrelevance.json").exists()

    e = single[0]
    assert e.check("toolsft_shop_multiple", [ONE]).valid
    loose = {**ONE.arguments, "sku": "a 1", "price": 9.5, "qty": 2}
    assert e.check("toolsft_shop_multiple", [ToolCall("place_order", loose)]).valid
    whole = {**ONE.arguments, "price": 10}  # int for number would pass; wrong value fails
    assert e.check("toolsft_shop_multiple", [ToolCall("place_order", whole)]).error_type == (
        "value_error:others"
    )
    float_qty = {**ONE.arguments, "qty": 2.0}
    assert e.check("toolsft_shop_multiple", [ToolCall("place_order", float_qty)]).error_type == (
        "type_error:simple"
    )
    with_zip = {**ONE.arguments, "address": {"city": "Paris", "zip": "75001"}}
    assert e.check("toolsft_shop_multiple", [ToolCall("place_order", with_zip)]).error_type == (
        "value_error:dict_value"
    )
    assert e.check("toolsft_shop_multiple", [TRACK_CALL]).error_type == (
        "simple_function_checker:wrong_func_name"
    )

    p = parallel[0]
    assert p.check("toolsft_shop_parallel", TWO[::-1]).valid
    assert p.check("toolsft_shop_parallel", TWO[:1]).error_type == (
        "parallel_function_checker_no_order:wrong_count"
    )
    assert irrelevance[0].check("toolsft_shop_irrelevance", []).valid
    assert not irrelevance[0].check("toolsft_shop_irrelevance", [TRACK_CALL]).valid


def test_int_for_number_passes_after_export(tmp_path: Path) -> None:
    row = example(
        "r", "x", [ToolCall("place_order", {"sku": "A", "qty": 1, "price": 3.0})], (ORDER,)
    )
    cat = convert([row], "shop")[0]
    truth = cat.answers[0]["ground_truth"] if cat.answers else []
    call = ToolCall("place_order", {"sku": "A", "qty": 1, "price": 3})
    assert check(cat.name, cat.entries[0]["function"], [call], truth).valid


def test_cli_export_stage_selection_and_errors(tmp_path: Path) -> None:
    data = write_dataset(tmp_path / "shop", {1: ROWS[:1], 2: ROWS[1:]})
    out = tmp_path / "bfcl"
    runner = CliRunner()
    result = runner.invoke(export_bfcl, ["--data", str(data), "--stage", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert not (out / "BFCL_v4_toolsft_shop_multiple.json").exists()  # stage 2 has no one-call row
    assert len(read_jsonl(out / "BFCL_v4_toolsft_shop_irrelevance.json")) == 1

    result = runner.invoke(export_bfcl, ["--data", str(data), "--stage", "all", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "toolsft_shop_parallel" in result.output
    answers = read_jsonl(out / "possible_answer" / "BFCL_v4_toolsft_shop_multiple.json")
    assert [a["id"] for a in answers] == ["toolsft_shop_multiple_0"]

    # Errors go through the `toolsft` group, which turns them into the one-line contract.
    from toolsft.cli.main import cli

    args = ["export-bfcl", "--data", str(data), "--out", str(out), "--stage"]
    result = runner.invoke(cli, [*args, "3"])
    assert result.exit_code == 2 and "stage3/test.jsonl: no such split file" in result.output
    bad = data / "stage1" / "test.jsonl"
    bad.write_text(bad.read_text() + "{not json\n")
    result = runner.invoke(cli, [*args, "1"])
    assert result.exit_code == 2 and "stage1/test.jsonl:2: not a toolsft row" in result.output


def test_exporter_imports_neither_torch_nor_eval() -> None:
    code = (
        "import sys, toolsft.gen.export_bfcl\n"
        "bad = [m for m in sys.modules if m == 'torch' or m.startswith('toolsft.eval')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
