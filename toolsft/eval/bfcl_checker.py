"""A pure re-implementation of BFCL's AST checker (Python language, non-live categories).

Why not depend on `bfcl-eval`: it pulls in every model SDK and needs its own folder layout.
Why re-implement instead of approximating: a BFCL number is only comparable with the
leaderboard when the rules are the leaderboard's, quirks included. This module mirrors
`bfcl_eval/eval_checker/ast_eval/ast_checker.py` (gorilla repo) and the relevance runner of
`eval_runner.py`, rule for rule, with the same `error_type` strings. Known, deliberate
differences (each only reachable on data BFCL itself would crash on, except the first):

* non-parallel categories look the function doc up by the gold call's name; BFCL's `simple`
  checker takes the first doc. BFCL's simple data always lists the gold function first, and
  toolsft's exported single-call categories carry many tools, so this keeps both right.
* a doc type outside BFCL's dialect raises `BfclDocError` (BFCL: KeyError); the JSON-Schema
  spellings `object` and `number` are accepted as `dict` and `float`.
* an array doc without `items` skips the nested type check (BFCL: KeyError).
* a gold name missing from the docs raises `BfclDocError` (BFCL: TypeError).
* a non-dict element where a list of dicts is expected fails with `value_error:dict_key`
  (BFCL: AttributeError).
* an int too large for a float, where a float is expected, fails with `value_error:others`
  (BFCL: OverflowError).

Names follow BFCL's two model styles: prompt-style models are scored with names as given;
FC models (BFCL's `underscore_to_dot`: OpenAI, Mistral, Gemini, ...) were shown each dot as
an underscore, so `math_factorial` is expected for `math.factorial`, and only that. Nothing
else about a name changes: no length limit, no other character replaced, no mapping back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from toolsft.eval.bfcl_values import (
    OK,
    BfclDocError,
    Verdict,
    check_param,
    fail,
)
from toolsft.types import ToolCall


def checker_kind(category: str) -> str:
    """Which checker BFCL runs for a category; it dispatches on substrings, so do we."""
    if "irrelevance" in category:
        return "irrelevance"
    if "relevance" in category:
        return "relevance"
    if "parallel" in category:
        return "parallel"
    if "multiple" in category:
        return "multiple"
    return "simple"


def fc_name(name: str) -> str:
    """The name BFCL shows an FC (`underscore_to_dot`) model and expects back: dots -> `_`."""
    return name.replace(".", "_")


def check(
    category: str,
    func_docs: Sequence[Mapping[str, Any]],
    calls: Sequence[ToolCall],
    ground_truth: Sequence[Mapping[str, Mapping[str, list[Any]]]] | None,
    *,
    underscore_to_dot: bool = False,
) -> Verdict:
    """Check one prediction (`calls`, empty for no call) against BFCL docs and answers.

    `func_docs` are BFCL-dialect function docs, `ground_truth` the entry's `ground_truth`
    list (`[{name: {param: [acceptable values]}}]`); unused for (ir)relevance categories.
    `underscore_to_dot` selects BFCL's FC name mode (see the module doc).
    """
    kind = checker_kind(category)
    bad = _format_error(calls)
    if kind in ("irrelevance", "relevance"):
        # BFCL's `is_empty_output`: output not in call format counts as no call at all.
        return _relevance(kind, 0 if bad else len(calls))
    if bad:
        return fail("ast_decoder:decoder_wrong_output_format", bad)
    if ground_truth is None:
        raise BfclDocError(f"category {category!r} needs ground truth, got none")
    if kind == "parallel":
        return _parallel_no_order(func_docs, calls, ground_truth, underscore_to_dot)
    checker = "multiple_function_checker" if kind == "multiple" else "simple_function_checker"
    want = 1 if kind == "simple" else len(ground_truth)  # BFCL: simple wants exactly one
    if len(calls) != want:
        return fail(f"{checker}:wrong_count", "Wrong number of functions.")
    if not ground_truth:  # BFCL would index out of range; zero expected calls, zero made.
        return OK
    answer = ground_truth[0]
    doc = _find_doc(func_docs, _answer_name(answer))
    if doc is None and kind == "simple" and func_docs:
        doc = func_docs[0]
    if doc is None:
        raise BfclDocError(f"no function doc named {_answer_name(answer)!r}")
    return check_call(doc, calls[0], answer, underscore_to_dot=underscore_to_dot)


def check_undecodable(category: str, reason: str) -> Verdict:
    """A prediction whose calls could not be decoded: BFCL's `decoder_failed` path, which
    (ir)relevance categories read as "no call"."""
    kind = checker_kind(category)
    if kind in ("irrelevance", "relevance"):
        return _relevance(kind, 0, reason)
    return fail("ast_decoder:decoder_failed", f"Invalid syntax. Failed to decode AST. {reason}")


def _relevance(kind: str, n_calls: int, reason: str = "") -> Verdict:
    """BFCL's relevance runner: irrelevance passes without a call, relevance with one."""
    if kind == "relevance":
        if n_calls:
            return OK
        return fail("relevance_error:decoder_failed", f"No call decoded. {reason}".strip())
    if n_calls:
        return fail(
            "irrelevance_error:decoder_success",
            f"Valid syntax. Successfully decoded {n_calls} call(s) when it should not.",
        )
    return OK


def check_call(
    doc: Mapping[str, Any],
    call: ToolCall,
    answer: Mapping[str, Mapping[str, list[Any]]],
    *,
    underscore_to_dot: bool = False,
) -> Verdict:
    """BFCL's `simple_function_checker`: one call against one doc and one gold answer."""
    expected = _answer_params(answer)
    params = doc.get("parameters", {})
    props: Mapping[str, Any] = params.get("properties", {})
    name = fc_name(doc["name"]) if underscore_to_dot else doc["name"]  # convert_func_name
    if call.name != name:
        return fail(
            "simple_function_checker:wrong_func_name",
            f"Function name {name!r} not found in model output (got {call.name!r}).",
        )
    args = call.arguments
    for param in params.get("required", []):
        if param not in args:
            return fail(
                "simple_function_checker:missing_required",
                f"Missing required parameter: {param!r}.",
            )
    for param, value in args.items():
        if param not in props or param not in expected:
            return fail(
                "simple_function_checker:unexpected_param",
                f"Unexpected parameter: {param!r}.",
            )
        verdict = check_param(param, value, props[param], expected[param])
        if not verdict.valid:
            return verdict
    for param, acceptable in expected.items():
        if param not in args and "" not in acceptable:
            return fail(
                "simple_function_checker:missing_optional",
                f"Optional parameter {param!r} not provided and not marked as optional.",
            )
    return OK


def _format_error(calls: Sequence[ToolCall]) -> str:
    """What BFCL's `is_function_calling_format_output` would reject, or ''. It checks the
    arguments only: a name that is not a string is a call, with a wrong name."""
    for i, call in enumerate(calls):
        if not isinstance(call.arguments, Mapping):
            return f"call {i} has no arguments object: {call!r:.200}"
    return ""


def _answer_name(answer: Mapping[str, Any]) -> str:
    if len(answer) != 1:
        raise BfclDocError(f"a ground-truth call must have exactly one name, got {list(answer)}")
    return next(iter(answer))


def _answer_params(answer: Mapping[str, Any]) -> Mapping[str, list[Any]]:
    params = answer[_answer_name(answer)]
    if not isinstance(params, Mapping):
        raise BfclDocError(f"ground-truth arguments must be an object, got {params!r}")
    return params


def _find_doc(func_docs: Sequence[Mapping[str, Any]], name: str) -> Mapping[str, Any] | None:
    return next((d for d in func_docs if d.get("name") == name), None)


def _parallel_no_order(
    func_docs: Sequence[Mapping[str, Any]],
    calls: Sequence[ToolCall],
    ground_truth: Sequence[Mapping[str, Mapping[str, list[Any]]]],
    underscore_to_dot: bool,
) -> Verdict:
    """Greedy matching, as BFCL does it: each gold call takes the first unmatched call that
    passes. (Greedy, not bipartite: BFCL can reject an order a perfect matcher would accept.)"""
    if len(calls) != len(ground_truth):
        return fail("parallel_function_checker_no_order:wrong_count", "Wrong number of functions.")
    matched: set[int] = set()
    for i, answer in enumerate(ground_truth):
        name = _answer_name(answer)
        doc = _find_doc(func_docs, name)
        if doc is None:
            raise BfclDocError(f"no function doc named {name!r}")
        errors: list[str] = []
        for j, call in enumerate(calls):
            if j in matched:
                continue
            verdict = check_call(doc, call, answer, underscore_to_dot=underscore_to_dot)
            if verdict.valid:
                matched.add(j)
                break
            errors.append(f"call {j}: {verdict.error_type}: {verdict.error}")
        else:
            return fail(
                "parallel_function_checker_no_order:cannot_find_match",
                f"Could not find a matching call for gold call {i} ({name}). " + " | ".join(errors),
            )
    return OK
