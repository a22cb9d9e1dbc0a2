"""BFCL interop: loading, dialect conversion, and a checker that agrees with BFCL's.

Tests on the real BFCL data skip when ../shared/bfcl is absent; the synthetic ones always run.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from click.testing import CliRunner

from toolsft.cli.main import cli
from toolsft.eval.bfcl import (
    BfclDataError,
    BfclEntry,
    gold_calls,
    list_categories,
    load_category,
    read_predictions,
    to_json_schema,
)
from toolsft.eval.bfcl_checker import check, checker_kind, fc_name
from toolsft.eval.bfcl_values import standardize
from toolsft.types import ToolCall

BFCL = Path(__file__).resolve().parents[1].parent / "shared" / "bfcl"
SIZES = {"simple_python": 400, "multiple": 200, "parallel": 200, "parallel_multiple": 200}
SIZES["irrelevance"] = 240
WRONG_NAME = "simple_function_checker:wrong_func_name"
_cache: dict[str, list[BfclEntry]] = {}


def entries(category: str) -> list[BfclEntry]:
    if not BFCL.is_dir():
        pytest.skip(f"BFCL data not found at {BFCL} (../shared/bfcl is read-only shared input)")
    if category not in _cache:
        _cache[category] = load_category(BFCL, category)
    return _cache[category]


def entry(category: str, entry_id: str) -> BfclEntry:
    return next(e for e in entries(category) if e.id == entry_id)


def params_of(e: BfclEntry, name: str) -> dict[str, Any]:
    doc = next(f for f in e.functions if f["name"] == name)
    return doc["parameters"]["properties"]


def replace_arg(calls: list[ToolCall], i: int, key: str, value: Any) -> list[ToolCall]:
    out = list(calls)
    out[i] = ToolCall(calls[i].name, {**calls[i].arguments, key: value})
    return out


# --- real data: gold passes ------------------------------------------------------------------


@pytest.mark.parametrize("category", sorted(SIZES))
def test_gold_answers_pass(category: str) -> None:
    es = entries(category)
    assert len(es) == SIZES[category]
    failures = [(e.id, v) for e in es if not (v := e.check(category, gold_calls(e))).valid]
    assert failures == []


def test_categories_listed_and_irrelevance_has_no_answers() -> None:
    entries("irrelevance")
    assert set(SIZES) <= set(list_categories(BFCL))
    assert all(e.ground_truth is None for e in entries("irrelevance"))
    assert all(e.ground_truth for e in entries("parallel"))


def test_naive_gold_trips_on_a_bfcl_data_quirk() -> None:
    """parallel_multiple_26's answer names `type`, a key of a nested item, not a parameter:
    taken literally it is an unexpected parameter under BFCL's rules, so gold_calls omits it."""
    e = entry("parallel_multiple", "parallel_multiple_26")
    calls = gold_calls(e)
    i = next(k for k, c in enumerate(calls) if c.name == "bank.calculate_balance")
    verdict = e.check("parallel_multiple", replace_arg(calls, i, "type", "credit"))
    assert verdict.error_type == "parallel_function_checker_no_order:cannot_find_match"
    assert "unexpected_param" in verdict.error


# --- real data: systematic perturbations ---------------------------------------------------


def single_call_cases() -> Iterator[tuple[str, BfclEntry, list[ToolCall]]]:
    for category in ("simple_python", "multiple"):
        for e in entries(category):
            yield category, e, gold_calls(e)


def first_param(e: BfclEntry, call: ToolCall, pred: Callable[[dict, Any], bool]) -> str | None:
    """The first argument of `call` whose (doc schema, value) satisfy `pred`."""
    props = params_of(e, call.name)
    return next((p for p, v in call.arguments.items() if pred(props[p], v)), None)


def test_wrong_function_name_fails() -> None:
    for category, e, calls in single_call_cases():
        bad = [ToolCall(calls[0].name + "_x", calls[0].arguments)]
        assert e.check(category, bad).error_type == "simple_function_checker:wrong_func_name"


def integral_float(schema: dict, value: Any) -> bool:
    return schema["type"] == "float" and type(value) is float and value.is_integer()


def test_number_types_string_or_float_for_int_fail_int_for_float_passes() -> None:
    n_int = n_float = 0
    for category, e, calls in single_call_cases():
        p = first_param(e, calls[0], lambda s, v: s["type"] == "integer" and type(v) is int)
        if p:
            n_int += 1
            for wrong in (str(calls[0].arguments[p]), float(calls[0].arguments[p])):
                bad = replace_arg(calls, 0, p, wrong)
                assert e.check(category, bad).error_type == "type_error:simple", e.id
        if p := first_param(e, calls[0], integral_float):
            n_float += 1
            assert e.check(category, replace_arg(calls, 0, p, int(calls[0].arguments[p]))).valid
    assert n_int > 100 and n_float > 10


def test_missing_required_fails() -> None:
    for category, e, calls in single_call_cases():
        doc = next(f for f in e.functions if f["name"] == calls[0].name)
        required = doc["parameters"]["required"]
        if required:
            args = {k: v for k, v in calls[0].arguments.items() if k != required[0]}
            verdict = e.check(category, [ToolCall(calls[0].name, args)])
            assert verdict.error_type == "simple_function_checker:missing_required", e.id


def test_unknown_extra_parameter_fails() -> None:
    for category, e, calls in single_call_cases():
        bad = replace_arg(calls, 0, "not_a_param", 1)
        assert e.check(category, bad).error_type == "simple_function_checker:unexpected_param"


def test_wrong_string_value_fails_and_case_punctuation_pass() -> None:
    n = 0
    for category, e, calls in single_call_cases():
        p = first_param(
            e,
            calls[0],
            lambda s, v: s["type"] == "string" and isinstance(v, str) and v.isascii(),
        )
        if not p:
            continue
        n += 1
        value = calls[0].arguments[p]
        bad = replace_arg(calls, 0, p, value + " zz")
        assert e.check(category, bad).error_type == "value_error:string", e.id
        ok = replace_arg(calls, 0, p, f" {value.upper().replace(' ', '-')}.")
        assert e.check(category, ok).valid, e.id
    assert n > 200


def test_wrong_enum_value_fails() -> None:
    n = 0
    for category, e, calls in single_call_cases():
        p = first_param(e, calls[0], lambda s, v: "enum" in s and isinstance(v, str))
        if p:
            others = [x for x in params_of(e, calls[0].name)[p]["enum"] if isinstance(x, str)]
            acceptable = next(iter(e.ground_truth[0].values()))[p]
            wrong = [x for x in others if standardize(x) not in map(standardize, acceptable)]
            if wrong:
                n += 1
                bad = replace_arg(calls, 0, p, wrong[0])
                assert e.check(category, bad).error_type == "value_error:string", e.id
    assert n > 5


def test_wrong_count_and_order_in_parallel() -> None:
    reversed_failures = []
    for category in ("parallel", "parallel_multiple"):
        for e in entries(category):
            calls = gold_calls(e)
            if not e.check(category, calls[::-1]).valid:
                reversed_failures.append(e.id)
            short = e.check(category, calls[:-1])
            assert short.error_type == "parallel_function_checker_no_order:wrong_count"
            assert not e.check(category, calls + calls[:1]).valid
    # BFCL matches greedily, not bipartitely: in parallel_178 the first gold call accepts
    # Microsoft *or* Apple, grabs Apple's call when it comes first, and the last gold call is
    # left without a match. BFCL's own checker rejects that order too (checked against it).
    assert reversed_failures == ["parallel_178"]


def test_wrong_count_in_single_call_categories() -> None:
    e = entry("simple_python", "simple_python_0")
    calls = gold_calls(e)
    assert e.check("simple_python", calls * 2).error_type == "simple_function_checker:wrong_count"
    assert e.check("simple_python", []).error_type == "simple_function_checker:wrong_count"
    m = entry("multiple", "multiple_0")
    assert m.check("multiple", []).error_type == "multiple_function_checker:wrong_count"


def test_irrelevance_passes_without_call_and_fails_with_one() -> None:
    for e in entries("irrelevance"):
        assert e.check("irrelevance", []).valid
        call = ToolCall(e.functions[0]["name"], {})
        assert e.check("irrelevance", [call]).error_type == "irrelevance_error:decoder_success"


def test_list_dict_and_optional_rules_on_real_entries() -> None:
    # A list compares element by element: reordering fails.
    e = entry("multiple", "multiple_3")  # pointA: [[3, 4]]
    assert e.check("multiple", replace_arg(gold_calls(e), 0, "pointA", [4, 3])).error_type == (
        "value_error:list/tuple"
    )
    # Dicts are compared one level deep: wrong value, unknown key.
    e = entry("simple_python", "simple_python_94")  # update_info: {name, email}
    info = dict(gold_calls(e)[0].arguments["update_info"])
    bad = replace_arg(gold_calls(e), 0, "update_info", {**info, "name": "Jane"})
    assert e.check("simple_python", bad).error_type == "value_error:dict_value"
    bad = replace_arg(gold_calls(e), 0, "update_info", {**info, "age": 3})
    assert e.check("simple_python", bad).error_type == "value_error:dict_key"
    # An omitted optional parameter passes only when "" is acceptable.
    e = entry("multiple", "multiple_0")  # get_area: ["", True]
    args = {k: v for k, v in gold_calls(e)[0].arguments.items() if k != "get_area"}
    assert e.check("multiple", [ToolCall("triangle_properties.get", args)]).valid
    # A bool is not an int.
    bad = replace_arg(gold_calls(e), 0, "side1", True)
    assert e.check("multiple", bad).error_type == "type_error:simple"


def test_name_modes_on_a_dotted_bfcl_function() -> None:
    """BFCL's two name modes, never both: as given (prompt models), or dots written as
    underscores (FC models, `underscore_to_dot`)."""
    e = entry("simple_python", "simple_python_1")  # math.factorial
    assert [t.name for t in e.tools(underscore_to_dot=True)] == ["math_factorial"]
    assert e.tools()[0].name == "math.factorial"
    dotted, underscored = (
        ToolCall("math.factorial", {"number": 5}),
        ToolCall("math_factorial", {"number": 5}),
    )
    assert e.check("simple_python", [dotted]).valid
    assert e.check("simple_python", [underscored]).error_type == WRONG_NAME
    assert e.check("simple_python", [underscored], underscore_to_dot=True).valid
    assert e.check("simple_python", [dotted], underscore_to_dot=True).error_type == WRONG_NAME


def test_name_modes_on_every_dotted_real_entry() -> None:
    n = 0
    for category in ("simple_python", "multiple", "parallel", "parallel_multiple"):
        for e in entries(category):
            calls = gold_calls(e)
            if not any("." in c.name for c in calls):
                continue
            n += 1
            fc_calls = [ToolCall(fc_name(c.name), c.arguments) for c in calls]
            assert e.check(category, calls).valid, e.id
            assert e.check(category, fc_calls, underscore_to_dot=True).valid, e.id
            assert not e.check(category, fc_calls).valid, e.id
            assert not e.check(category, calls, underscore_to_dot=True).valid, e.id
    assert n > 100


def test_converted_schemas_are_valid_json_schema() -> None:
    total = bad = 0
    for category in SIZES:
        for e in entries(category):
            tools = {t.name: t for t in e.tools()}
            for t in tools.values():
                jsonschema.Draft202012Validator.check_schema(dict(t.parameters))
            for call in gold_calls(e):
                total += 1
                validator = jsonschema.Draft202012Validator(dict(tools[call.name].parameters))
                bad += not validator.is_valid(dict(call.arguments))
    assert bad <= total * 0.01  # BFCL's few "variable" answers (None, "data['x']")


# --- synthetic: always run -----------------------------------------------------------------


def test_to_json_schema_recurses() -> None:
    bfcl = {
        "type": "dict",
        "properties": {
            "point": {"type": "tuple", "items": {"type": "float"}},
            "meta": {"type": "dict", "properties": {"x": {"type": "any"}}, "optional": True},
            "tags": {"type": "array", "items": {"type": "dict", "properties": {}}},
        },
        "required": ["point"],
    }
    assert to_json_schema(bfcl) == {
        "type": "object",
        "properties": {
            "point": {"type": "array", "items": {"type": "number"}},
            "meta": {"type": "object", "properties": {"x": {}}},
            "tags": {"type": "array", "items": {"type": "object", "properties": {}}},
        },
        "required": ["point"],
    }


def test_fc_names_only_replace_dots() -> None:
    """As BFCL's `re.sub(r"\\.", "_", name)`: no length limit, no other character touched,
    and two names may meet (BFCL then accepts the shared spelling for either)."""
    long = "a." + "x" * 100 + ".b-c/d é"
    e = BfclEntry("x", (), ({"name": long}, {"name": "a.b"}, {"name": "a_b"}, {"name": "c"}))
    assert e.name_map() == {
        long: "a_" + "x" * 100 + "_b-c/d é",
        "a.b": "a_b",
        "a_b": "a_b",
        "c": "c",
    }


def test_checker_dispatch_mirrors_bfcl() -> None:
    assert checker_kind("parallel_multiple") == "parallel"
    assert checker_kind("live_irrelevance") == "irrelevance"
    assert checker_kind("toolsft_shop") == "simple"
    assert standardize("April 1, 2024") == standardize("april 1 2024")


DOC = {
    "name": "shop.find",
    "description": "Find items.",
    "parameters": {
        "type": "dict",
        "properties": {"q": {"type": "string"}, "n": {"type": "integer"}, "p": {"type": "float"}},
        "required": ["q"],
    },
}
TRUTH = [{"shop.find": {"q": ["red shoes"], "n": ["", 5], "p": [2.0, ""]}}]


def write_mini_bfcl(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    rows = [
        {"id": f"simple_{i}", "question": [[{"role": "user", "content": "q"}]], "function": [DOC]}
        for i in range(2)
    ]
    (root / "BFCL_v4_simple.json").write_text("\n".join(json.dumps(r) for r in rows))  # no final \n
    (root / "possible_answer").mkdir()
    text = "\n".join(json.dumps({"id": r["id"], "ground_truth": TRUTH}) for r in rows)
    (root / "possible_answer" / "BFCL_v4_simple.json").write_text(text + "\n\n")
    return root


def test_synthetic_rules() -> None:
    def v(**args: Any) -> str | None:
        return check("simple", [DOC], [ToolCall("shop.find", args)], TRUTH).error_type

    assert v(q="Red-Shoes", n=5, p=2) is None
    assert v(q="red shoes") is None
    assert v(q="blue shoes") == "value_error:string"
    assert v(q="red shoes", n=5.0) == "type_error:simple"
    assert v(q="red shoes", n=6) == "value_error:others"
    assert v(n=5) == "simple_function_checker:missing_required"
    assert v(q="red shoes", z=1) == "simple_function_checker:unexpected_param"
    bad_args = check("simple", [DOC], [ToolCall("shop.find", [1])], TRUTH)  # type: ignore[arg-type]
    assert bad_args.error_type == "ast_decoder:decoder_wrong_output_format"


def test_loader_errors_name_file_and_line(tmp_path: Path) -> None:
    root = write_mini_bfcl(tmp_path / "b")
    assert [e.id for e in load_category(root, "simple")] == ["simple_0", "simple_1"]
    with pytest.raises(BfclDataError, match="BFCL_v4_nope.json.*categories here: simple"):
        load_category(root, "nope")
    (root / "possible_answer" / "BFCL_v4_simple.json").unlink()
    with pytest.raises(BfclDataError, match="missing possible-answer file"):
        load_category(root, "simple")
    preds = tmp_path / "p.jsonl"
    call = {"name": "f", "arguments": {"q": "a\u2028b"}}  # a raw line separator inside JSON
    preds.write_text(json.dumps({"id": "x", "calls": [call]}, ensure_ascii=False))
    assert read_predictions(preds)[0].calls[0].arguments == {"q": "a\u2028b"}
    preds.write_text('{"id": "simple_0", "calls": []}\n[1]\n')
    with pytest.raises(BfclDataError, match=r"p.jsonl:2: expected an object"):
        read_predictions(preds)


def run_score(
    root: Path, preds: list[Any], out: Path, category: str = "simple", *flags: str
) -> Any:
    path = out.parent / "preds.jsonl"
    lines = [p if isinstance(p, str) else json.dumps(p) for p in preds]
    path.write_text("\n".join(lines))
    args = ["--bfcl", str(root), "--category", category, "--predictions", str(path), *flags]
    return CliRunner().invoke(cli, ["bfcl-score", *args, "--out", str(out)])  # via the lazy group


def verdicts(out: Path) -> list[tuple[bool, str | None]]:
    return [(r["valid"], r["error_type"]) for r in map(json.loads, out.read_text().splitlines())]


def test_cli_scores_in_input_order_with_duplicate_ids(tmp_path: Path) -> None:
    root = write_mini_bfcl(tmp_path / "b")
    good = {"name": "shop.find", "arguments": {"q": "red shoes"}}
    preds = [
        {"id": "simple_1", "calls": [good]},
        {"id": "simple_0", "calls": []},
        {"id": "simple_1", "calls": [{"name": "shop.find", "arguments": '{"q": "x"}'}]},
        {"id": "simple_0", "calls": [good]},
    ]
    out = tmp_path / "v.jsonl"
    result = run_score(root, preds, out)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows == [
        {"id": "simple_1", "valid": True, "error_type": None},
        {"id": "simple_0", "valid": False, "error_type": "simple_function_checker:wrong_count"},
        {"id": "simple_1", "valid": False, "error_type": "value_error:string"},
        {"id": "simple_0", "valid": True, "error_type": None},
    ]
    assert "50.00%" in result.output and "simple" in result.output


def test_cli_errors_are_clear(tmp_path: Path) -> None:
    root = write_mini_bfcl(tmp_path / "b")
    out = tmp_path / "v.jsonl"
    result = run_score(root, [{"id": "simple_0", "calls": []}, {"id": "zz", "calls": []}], out)
    assert result.exit_code == 2 and "preds.jsonl:2: id not in BFCL category" in result.output
    assert "('zz')" in result.output and "Traceback" not in result.output
    result = run_score(root, [{"id": "simple_0", "calls": []}, "{oops"], out)
    assert result.exit_code == 2 and "preds.jsonl:2: invalid JSON" in result.output
    result = run_score(root, [{"id": "simple_0", "calls": []}], out, category="parallel")
    assert result.exit_code == 2 and "BFCL_v4_parallel.json: no such" in result.output
    result = run_score(root, [{"id": "simple_0", "calls": [["shop.find", {}]]}], out)
    assert result.exit_code == 2 and "preds.jsonl:1:calls[0]: a call must be" in result.output
    assert not out.exists()


def test_cli_gold_on_real_data(tmp_path: Path) -> None:
    es = entries("parallel")
    preds = [{"id": e.id, "calls": [c.as_dict() for c in gold_calls(e)]} for e in es]
    out = tmp_path / "v.jsonl"
    result = run_score(BFCL, preds, out, category="parallel")
    assert result.exit_code == 0, result.output
    assert "100.00%" in result.output
    assert len(out.read_text().splitlines()) == len(es)


# --- name modes, long and unusual names ------------------------------------------------------


def named(name: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """DOC and TRUTH with the function renamed."""
    return {**DOC, "name": name}, [{name: TRUTH[0]["shop.find"]}]


@pytest.mark.parametrize(
    ("name", "fc_spelling"),
    [
        ("shop.find", "shop_find"),
        ("plain_name", "plain_name"),
        ("a.b.c.d", "a_b_c_d"),
        ("." + "very.long." * 12 + "x", "_" + "very_long_" * 12 + "x"),  # 121 characters
        ("tool-v2/beta:find.it", "tool-v2/beta:find_it"),  # only dots change
        ("café.größe", "café_größe"),
        ("My Tool.find", "My Tool_find"),
        ("a..b.", "a__b_"),
    ],
)
def test_each_name_mode_accepts_one_spelling(name: str, fc_spelling: str) -> None:
    doc, truth = named(name)

    def ok(called: str, fc: bool) -> bool:
        call = ToolCall(called, {"q": "red shoes"})
        return check("simple", [doc], [call], truth, underscore_to_dot=fc).valid

    assert ok(name, fc=False) and ok(fc_spelling, fc=True)
    if fc_spelling != name:  # the other mode's spelling fails, both ways round
        assert not ok(fc_spelling, fc=False) and not ok(name, fc=True)
    for other in {name.replace("_", "."), name.upper(), name[:64], name + "_", " " + name} - {
        name,
        fc_spelling,
    }:
        assert not ok(other, fc=False) and not ok(other, fc=True), other


def test_underscores_are_never_read_as_dots() -> None:
    """BFCL's flag is named `underscore_to_dot`, but it only ever writes dots as underscores."""
    doc, truth = named("shop_find")
    call = [ToolCall("shop.find", {"q": "red shoes"})]
    for fc in (False, True):
        assert check("simple", [doc], call, truth, underscore_to_dot=fc).error_type == WRONG_NAME


def test_parallel_calls_must_use_one_mode_s_spelling() -> None:
    docs = [{**DOC, "name": "a.find"}, {**DOC, "name": "b.find"}]
    truth = [{d["name"]: TRUTH[0]["shop.find"]} for d in docs]
    args = {"q": "red shoes"}
    given = [ToolCall("b.find", args), ToolCall("a.find", args)]
    fc = [ToolCall("b_find", args), ToolCall("a_find", args)]
    mixed = [ToolCall("b.find", args), ToolCall("a_find", args)]
    assert check("parallel", docs, given, truth).valid
    assert check("parallel", docs, fc, truth, underscore_to_dot=True).valid
    for calls, mode in ((fc, False), (given, True), (mixed, False), (mixed, True)):
        verdict = check("parallel", docs, calls, truth, underscore_to_dot=mode)
        assert verdict.error_type == "parallel_function_checker_no_order:cannot_find_match"


def test_cli_has_the_name_mode_flag(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["bfcl-score", "--help"])
    assert result.exit_code == 0 and "--underscore-to-dot" in result.output
    root = write_mini_bfcl(tmp_path / "b")  # the function is shop.find
    preds = [
        {"id": "simple_0", "calls": [{"name": "shop.find", "arguments": {"q": "red shoes"}}]},
        {"id": "simple_1", "calls": [{"name": "shop_find", "arguments": {"q": "red shoes"}}]},
    ]
    out = tmp_path / "v.jsonl"
    result = run_score(root, preds, out)
    assert result.exit_code == 0, result.output
    assert verdicts(out) == [(True, None), (False, WRONG_NAME)]
    assert "as given" in result.output
    result = run_score(root, preds, out, "simple", "--underscore-to-dot")
    assert result.exit_code == 0, result.output
    assert verdicts(out) == [(False, WRONG_NAME), (True, None)]
    assert "dots as underscores" in result.output


# --- hostile predictions: the row fails, the run goes on -------------------------------------


def test_undecodable_or_malformed_arguments_fail_the_row_as_bfcl_does(tmp_path: Path) -> None:
    root = write_mini_bfcl(tmp_path / "b")
    calls = [
        [{"name": "shop.find", "arguments": '{"q": "red shoes"'}],  # truncated JSON string
        [{"name": "shop.find", "arguments": ""}],  # BFCL's json.loads("") fails too
        [{"name": "shop.find", "arguments": ["red shoes"]}],  # not an object
        [{"function": {"name": "shop.find", "arguments": '{"q": "RED shoes"}'}}],  # wrapped
        [{"name": 7, "arguments": {"q": "red shoes"}}],  # not a string: a wrong name
    ]
    out = tmp_path / "v.jsonl"
    result = run_score(root, [{"id": "simple_0", "calls": c} for c in calls], out)
    assert result.exit_code == 0, result.output
    assert verdicts(out) == [
        (False, "ast_decoder:decoder_failed"),
        (False, "ast_decoder:decoder_failed"),
        (False, "ast_decoder:decoder_wrong_output_format"),
        (True, None),
        (False, WRONG_NAME),
    ]


def test_irrelevance_reads_undecodable_output_as_no_call() -> None:
    """BFCL's relevance runner: output that does not decode, or is not in call format
    (`is_empty_output`), is no call at all."""
    docs = [DOC]
    assert check("irrelevance", docs, [ToolCall("shop.find", [1])], None).valid  # type: ignore[arg-type]
    both = [ToolCall("shop.find", {}), ToolCall("shop.find", None)]  # type: ignore[arg-type]
    assert check("irrelevance", docs, both, None).valid
    assert not check("irrelevance", docs, [ToolCall("x", {})], None).valid
    assert check("relevance", docs, [ToolCall("x", {})], None).valid
    assert not check("relevance", docs, [ToolCall("x", None)], None).valid  # type: ignore[arg-type]


def test_hostile_values_fail_the_row_not_the_run(tmp_path: Path) -> None:
    root = write_mini_bfcl(tmp_path / "b")
    huge = "1" + "0" * 400  # an int far past a float's range, where a float is expected
    lines = [
        '{"id": "simple_0", "calls": [{"name": "shop.find", "arguments": {"q": "\\ud800"}}]}',
        '{"id": "simple_1", "calls": [{"name": "shop.find", "arguments": {"q": "red shoes", '
        f'"p": {huge}}}}}]}}',
        json.dumps(
            {
                "id": "simple_0",
                "calls": [{"name": "shop.find", "arguments": {"q": "red shoes", "\ud800": 1}}],
            }
        ),
        json.dumps(
            {"id": "simple_1", "calls": [{"name": "shop.find", "arguments": {"q": "x" * 50_000}}]}
        ),
    ]
    out = tmp_path / "v.jsonl"
    result = run_score(root, lines, out, "simple", "--with-errors")
    assert result.exit_code == 0, result.output
    assert verdicts(out) == [
        (False, "value_error:string"),
        (False, "value_error:others"),
        (False, "simple_function_checker:unexpected_param"),
        (False, "value_error:string"),
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"id": "simple_0", "calls": []}\n\xff\xfe', "preds.jsonl: not UTF-8 text"),
        ('{"id": "simple_0", "calls": [' + "1" * 5000 + "]}", "preds.jsonl:1: unreadable JSON"),
        (
            '{"id": "s", "calls": ' + "[" * 100_000 + "]" * 100_000 + "}",
            "preds.jsonl:1: unreadable",
        ),
        ('{"id": 3, "calls": []}', "preds.jsonl:1: field 'id' must be a str (3)"),
        ('{"id": "simple_0", "calls": {}}', "preds.jsonl:1: field 'calls' must be a list ({})"),
    ],
)
def test_unreadable_predictions_are_one_line_errors(
    tmp_path: Path, content: str | bytes, message: str
) -> None:
    root = write_mini_bfcl(tmp_path / "b")
    out = tmp_path / "v.jsonl"
    preds = tmp_path / "preds.jsonl"
    preds.write_bytes(content if isinstance(content, bytes) else content.encode())
    args = ["--bfcl", str(root), "--category", "simple", "--predictions", str(preds)]
    result = CliRunner().invoke(cli, ["bfcl-score", *args, "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not out.exists()


def test_a_fifo_or_folder_is_refused_not_read(tmp_path: Path) -> None:
    import os

    root = write_mini_bfcl(tmp_path / "b")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for path in (fifo, tmp_path):
        args = ["--bfcl", str(root), "--category", "simple", "--predictions", str(path)]
        result = CliRunner().invoke(cli, ["bfcl-score", *args, "--out", str(tmp_path / "v")])
        assert result.exit_code == 2 and f"{path}: not a regular file" in result.output


def test_run_bfcl_is_an_fc_run(tmp_path: Path) -> None:
    """toolsft engines pass tools the FC way: names shown with underscores, scored as such."""
    from toolsft.chat.template import render_calls
    from toolsft.engines.base import Decoding
    from toolsft.engines.replay import ReplayEngine, request_key
    from toolsft.eval.bfcl_run import run_bfcl

    root = write_mini_bfcl(tmp_path / "b")
    call = ToolCall("shop.find", {"q": "red shoes"})
    script = {
        request_key("simple_0", 0, 0): render_calls([ToolCall("shop_find", call.arguments)]),
        request_key("simple_1", 0, 0): render_calls([call]),
    }
    res = run_bfcl(ReplayEngine(script), root, "simple", Decoding())
    assert res["name_mode"] == "underscore_to_dot"
    assert [(r["valid"], r["error_type"]) for r in res["rows"]] == [
        (True, None),
        (False, WRONG_NAME),
    ]
