"""Does `toolsft bfcl-score` agree with BFCL's own checker? Valid/invalid, prediction by prediction.

Builds prediction sets from BFCL's public data with a seeded rng (answers drawn from the
possible answers, then perturbed: wrong values, missing and extra parameters, wrong types,
int for float, renamed functions with dots and underscores, reordered or dropped parallel
calls, junk arguments), scores each set with `toolsft bfcl-score` (the CLI, in-process) and
with BFCL's checker, in both of BFCL's name modes (prompt: names as given; FC:
`underscore_to_dot`), and prints the agreement per category and mode, overall, and the
disagreements.

BFCL's checker comes from the `bfcl-eval` wheel, unpacked outside the project (the project
never depends on it); only its AST checker and format helpers are imported, with its model
table replaced by two fake models, one per name mode:

    python3 -m pip download --no-deps bfcl-eval==2026.3.23 -d /tmp/bfclw
    mkdir -p /tmp/bfcl_src && unzip -q -o /tmp/bfclw/*.whl -d /tmp/bfcl_src
    .venv/bin/python benchmarks/bfcl_agreement.py --bfcl-src /tmp/bfcl_src --seed 7

BFCL decodes an FC model's arguments with `json.loads`; the same is done here for arguments
given as a string, and objects are passed as decoded. Predictions on which BFCL's checker
itself raises are reported and left out of the rate. Goal (issue 17): >= 99.5% agreement in
both name modes on a seed nobody tuned on.
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import sys
import tempfile
import types
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CATEGORIES = ("simple_python", "multiple", "parallel", "parallel_multiple", "irrelevance")
MODES = {"prompt": False, "fc": True}  # fake BFCL model name -> underscore_to_dot
PUNCT = " ,./-_*^"
_OMIT = object()


# --- BFCL's checker --------------------------------------------------------------------------


def load_bfcl(src: Path) -> Callable[[str, list[dict], list[dict] | None, dict, str], tuple]:
    """BFCL's verdict function for one prediction line: (valid, error_type), or raises."""
    sys.path.insert(0, str(src))
    config = types.ModuleType("bfcl_eval.constants.model_config")
    config.MODEL_CONFIG_MAPPING = {  # type: ignore[attr-defined]
        name: types.SimpleNamespace(underscore_to_dot=flag) for name, flag in MODES.items()
    }
    sys.modules["bfcl_eval.constants.model_config"] = config
    try:
        import filelock  # noqa: F401  (bfcl_eval.utils imports it; the checker never uses it)
    except ImportError:
        sys.modules["filelock"] = types.SimpleNamespace(FileLock=object)  # type: ignore[assignment]
    from bfcl_eval.constants.enums import Language
    from bfcl_eval.eval_checker.ast_eval.ast_checker import ast_checker
    from bfcl_eval.utils import is_empty_output, is_function_calling_format_output

    def verdict(category: str, docs: list, truth: list | None, line: dict, model: str) -> tuple:
        try:  # BFCL's FC decode: {name: json.loads(arguments)}
            decoded = [_bfcl_decode(raw) for raw in line["calls"]]
        except Exception as exc:  # noqa: BLE001 - any decode failure is BFCL's decoder_failed
            if "relevance" in category:
                return ("irrelevance" in category), f"decoder_failed ({exc})"
            return False, "ast_decoder:decoder_failed"
        if "relevance" in category:  # the relevance runner: is_empty_output means no call
            has_call = not is_empty_output(decoded)
            return has_call != ("irrelevance" in category), "relevance"
        if not is_function_calling_format_output(decoded):
            return False, "ast_decoder:decoder_wrong_output_format"
        out = ast_checker(docs, decoded, truth, Language.PYTHON, category, model)
        return out["valid"], out.get("error_type")

    return verdict


def _bfcl_decode(raw: dict) -> dict:
    fn = raw.get("function", raw)
    args = fn.get("arguments", {})
    return {fn["name"]: json.loads(args) if isinstance(args, str) else args}


# --- prediction sets ---------------------------------------------------------------------------


def fc(name: str) -> str:
    return name.replace(".", "_")


def draw_value(rng: random.Random, options: list, schema: dict) -> Any:
    """One acceptable value ("" = omitted -> `_OMIT`); dict answers hold options per key."""
    value = rng.choice(options) if options else ""
    if value == "":
        return _OMIT
    if schema.get("type") == "dict" and isinstance(value, dict):
        return draw_dict(rng, value)
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return [draw_dict(rng, v) for v in value]
    return copy.deepcopy(value)


def draw_dict(rng: random.Random, answer: dict) -> dict:
    out = {}
    for key, options in answer.items():
        value = rng.choice(options) if isinstance(options, list) and options else options
        if value != "":
            out[key] = copy.deepcopy(value)
    return out


def draw_answer(rng: random.Random, entry: Any, fc_names: bool) -> list[dict]:
    """One call per gold call, each value drawn from the acceptable ones."""
    docs = {f["name"]: f for f in entry.functions}
    calls = []
    for gold in entry.ground_truth or ():
        name, params = next(iter(gold.items()))
        props = docs.get(name, {}).get("parameters", {}).get("properties", {})
        args = {}
        for param, options in params.items():
            value = draw_value(rng, options, props.get(param, {}))
            if value is not _OMIT:
                args[param] = value
        calls.append({"name": fc(name) if fc_names else name, "arguments": args})
    return calls


def perturb_value(rng: random.Random, value: Any) -> Any:
    kind = type(value)
    choices: list[Callable[[], Any]] = [lambda: None, lambda: str(value), lambda: [value]]
    if kind is bool:
        choices += [lambda: not value, lambda: int(value)]
    elif kind is int:
        choices += [
            lambda: value + rng.choice((-1, 1)),
            lambda: float(min(value, 10**300)),
            lambda: True,
        ]
        choices += [lambda: 10 ** rng.choice((20, 400))]
    elif kind is float:
        choices += [lambda: value * 1.5 + 1, lambda: int(value), lambda: round(value, 1)]
        choices += [lambda: float("inf")]
    elif kind is str:
        choices += [lambda: value.upper(), lambda: value + rng.choice(PUNCT), lambda: value + "x"]
        choices += [lambda: " " + value.replace(" ", rng.choice(PUNCT)), lambda: value + "!"]
        choices += [lambda: value[:-1], lambda: value.replace(" ", ":"), lambda: "\ud800" + value]
    elif kind is list:
        choices += [lambda: value[::-1], lambda: value[:-1], lambda: value + value[:1]]
        choices += [lambda: [perturb_value(rng, v) for v in value], lambda: tuple(value)]
        choices += [lambda: [str(v) for v in value], lambda: {"x": value}]
    elif kind is dict:
        choices += [lambda: {**value, "zz": 1}, lambda: dict(list(value.items())[:-1])]
        choices += [lambda: {k: perturb_value(rng, v) for k, v in value.items()}]
    return rng.choice(choices)()


def perturb_args(rng: random.Random, entry: Any, call: dict) -> None:
    args = call["arguments"]
    if not isinstance(args, dict):
        return
    doc = next((f for f in entry.functions if fc(f["name"]) == fc(str(call["name"]))), None)
    props = list((doc or {}).get("parameters", {}).get("properties", {}))
    op = rng.choice(("value", "value", "value", "drop", "extra", "doc_param"))
    if op == "value" and args:
        key = rng.choice(sorted(args))
        args[key] = perturb_value(rng, args[key])
    elif op == "drop" and args:
        del args[rng.choice(sorted(args))]
    elif op == "extra":
        args[rng.choice(("zz_extra", "Unit", "_"))] = rng.choice((1, "a", None, [1]))
    elif op == "doc_param" and props:
        key = rng.choice(props)
        args[key] = args.get(key, rng.choice((1, 2.5, "x", True, [], {})))


def rename(rng: random.Random, entry: Any, name: str) -> Any:
    """Names as a model might misspell them: the other mode's spelling, and worse."""
    others = [f["name"] for f in entry.functions]
    if not isinstance(name, str):
        return rng.choice(others)
    return rng.choice(
        (
            name.replace("_", "."),
            name.replace(".", "_"),
            name.upper(),
            name + "_",
            name.split(".")[-1],
            name.replace("_", "-"),
            rng.choice(others),
            fc(rng.choice(others)),
            " " + name,
            name + "." + name,
            7,
            None,
        )
    )


def perturb_calls(rng: random.Random, entry: Any, calls: list[dict]) -> list[dict]:
    op = rng.choice(("args", "args", "args", "name", "order", "count"))
    if op == "args" and calls:
        perturb_args(rng, entry, rng.choice(calls))
    elif op == "name" and calls:
        call = rng.choice(calls)
        call["name"] = rename(rng, entry, call["name"])
    elif op == "order":
        rng.shuffle(calls)
    elif op == "count":
        if calls and rng.random() < 0.5:
            calls.pop(rng.randrange(len(calls)))
        elif calls:
            calls.append(copy.deepcopy(rng.choice(calls)))
    return calls


def junk(rng: random.Random, entry: Any, calls: list[dict]) -> list[dict]:
    """What a hostile or broken model emits: arguments strings, non-objects, deep nesting."""
    calls = calls or [{"name": rng.choice(entry.functions)["name"], "arguments": {}}]
    i = rng.randrange(len(calls))
    call = calls[i]
    args = call["arguments"]
    call["arguments"] = rng.choice(
        (
            json.dumps(args),
            json.dumps(args)[:-1],
            "",
            [args],
            None,
            "null",
            "[]",
            {"function": args},
            {k: [[[[v]]]] for k, v in args.items()} if isinstance(args, dict) else args,
        )
    )
    if rng.random() < 0.2:
        calls[i] = {"function": call}  # OpenAI's tool_calls wrapper
    return calls


def predictions(rng: random.Random, entry: Any, fc_names: bool, k: int) -> list[dict]:
    lines = []
    for _ in range(k):
        if entry.ground_truth is None:  # irrelevance: no call, or some call
            docs = entry.functions
            calls = [] if rng.random() < 0.3 else [{"name": rng.choice(docs)["name"]}]
            for call in calls:
                call["arguments"] = {"x": 1}
                call["name"] = fc(call["name"]) if fc_names else call["name"]
            if calls and rng.random() < 0.5:
                calls = junk(rng, entry, calls)
        else:
            calls = draw_answer(rng, entry, fc_names)
            for _ in range(rng.choice((0, 1, 1, 2))):
                calls = perturb_calls(rng, entry, calls)
            if rng.random() < 0.1:
                calls = junk(rng, entry, calls)
        # Both checkers see what a predictions file holds: the JSON round trip of the line.
        lines.append(json.loads(json.dumps({"id": entry.id, "calls": calls})))
    return lines


# --- scoring ---------------------------------------------------------------------------------


def toolsft_verdicts(bfcl: Path, category: str, lines: list[dict], fc_mode: bool) -> list[dict]:
    from click.testing import CliRunner

    from toolsft.cli.main import cli

    with tempfile.TemporaryDirectory(prefix="bfcl-agree-") as tmp:
        preds, out = Path(tmp) / "preds.jsonl", Path(tmp) / "verdicts.jsonl"
        preds.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
        args = ["bfcl-score", "--bfcl", str(bfcl), "--category", category]
        args += ["--predictions", str(preds), "--out", str(out)]
        res = CliRunner().invoke(cli, args + (["--underscore-to-dot"] if fc_mode else []))
        if res.exit_code != 0:
            raise SystemExit(f"bfcl-score failed ({res.exit_code}): {res.output}")
        return [json.loads(row) for row in out.read_text().splitlines()]


WEIRD = (
    lambda n, r: n + "." + "x" * r.randint(60, 120),  # past OpenAI's 64 characters
    lambda n, r: n.replace("_", "."),
    lambda n, r: "a.b." + n + ".c",
    lambda n, r: n + "-v2/beta:x",
    lambda n, r: "café." + n + ".größe",
    lambda n, r: "." + n + ".",
    lambda n, r: n.replace("_", "..", 1),
    lambda n, r: n.replace(".", "_"),
    lambda n, r: "My Tool." + n,
)


def unusual_copy(src: Path, dst: Path, categories: list[str], seed: int) -> Path:
    """BFCL's data with every function renamed to a long or unusual name (docs and answers
    alike), so name handling is measured beyond the plain names BFCL ships."""
    from toolsft.eval.bfcl import answer_path, category_path, read_jsonl

    rng = random.Random(f"{seed}:names")
    for category in categories:
        renamed: dict[str, str] = {}
        rows = [obj for _, obj in read_jsonl(category_path(src, category))]
        for row in rows:
            for doc in row["function"]:
                doc["name"] = renamed.setdefault(doc["name"], rng.choice(WEIRD)(doc["name"], rng))
        _write_rows(category_path(dst, category), rows)
        if answer_path(src, category).is_file():
            answers = [obj for _, obj in read_jsonl(answer_path(src, category))]
            for a in answers:
                a["ground_truth"] = [
                    {renamed[k]: v for k, v in g.items()} for g in a["ground_truth"]
                ]
            _write_rows(answer_path(dst, category), answers)
    return dst


def _write_rows(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")


def score_set(
    args: argparse.Namespace,
    verdict: Callable,
    folder: Path,
    category: str,
    mode: str,
    shown: list[int],
) -> Counter[str]:
    """Agreement counts for one category and name mode, printing disagreements."""
    from toolsft.eval.bfcl import load_category

    entries = load_category(folder, category)
    rng = random.Random(f"{args.seed}:{folder.name}:{category}:{mode}")
    lines = [p for e in entries for p in predictions(rng, e, MODES[mode], args.per_entry)]
    ours = toolsft_verdicts(folder, category, lines, MODES[mode])
    by_id = {e.id: e for e in entries}
    counts: Counter[str] = Counter()
    for line, mine in zip(lines, ours, strict=True):
        e = by_id[line["id"]]
        truth = list(e.ground_truth) if e.ground_truth is not None else None
        try:
            theirs = verdict(category, list(e.functions), truth, line, mode)
        except Exception:  # noqa: BLE001 - BFCL crashing is counted, not compared
            counts["raised"] += 1
            continue
        counts["n"] += 1
        counts["bfcl_valid"] += bool(theirs[0])
        if not theirs[0] and not mine["valid"] and "relevance" not in category:
            counts["both_invalid"] += 1
            counts["same_error"] += theirs[1] == mine["error_type"]
        if theirs[0] == mine["valid"]:
            counts["agree"] += 1
        elif shown[0] < args.show:
            shown[0] += 1
            print(
                f"  DISAGREE {folder.name}/{category}/{mode} {line['id']}: toolsft {mine} | "
                f"BFCL {theirs} | {json.dumps(line['calls'])[:300]}"
            )
    return counts


def row(label: str, mode: str, c: Counter[str]) -> str:
    n = max(c["n"], 1)
    same = f"{c['same_error'] / c['both_invalid']:.1%}" if c["both_invalid"] else "-"
    return (
        f"{label:<28} {mode:<7} {c['n']:>6} {c['agree']:>6} {c['agree'] / n:>8.3%} "
        f"{c['raised']:>7} {c['bfcl_valid'] / n:>11.1%} {same:>11}"
    )


def compare(args: argparse.Namespace) -> int:
    verdict = load_bfcl(args.bfcl_src)
    totals = {mode: Counter[str]() for mode in MODES}
    shown = [0]
    print(
        f"{'category':<28} {'mode':<7} {'n':>6} {'agree':>6} {'rate':>8} {'raised':>7} "
        f"{'bfcl valid':>11} {'same error':>11}"
    )
    with tempfile.TemporaryDirectory(prefix="bfcl-names-") as tmp:
        folders = [args.bfcl]
        if not args.no_unusual_names:
            folders.append(
                unusual_copy(args.bfcl, Path(tmp) / "unusual", args.categories, args.seed)
            )
        for folder in folders:
            tag = "" if folder == args.bfcl else " (unusual)"
            for category in args.categories:
                for mode in MODES:
                    counts = score_set(args, verdict, folder, category, mode, shown)
                    totals[mode].update(counts)
                    print(row(category + tag, mode, counts))
    ok = True
    for mode, c in totals.items():
        ok &= c["agree"] >= 0.995 * c["n"]
        print(row("overall", mode, c))
    print(
        f"seed {args.seed}, {args.per_entry} predictions per entry and mode; 'raised': BFCL's "
        "checker raised (not compared); 'same error': same error_type where both reject "
        f"(AST categories); goal >= 99.5% in each mode: {'met' if ok else 'NOT met'}"
    )
    return 0 if ok else 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bfcl-src", type=Path, help="unpacked bfcl-eval wheel (see the doc)")
    ap.add_argument("--bfcl", type=Path, default=REPO.parent / "shared" / "bfcl")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--per-entry", type=int, default=8)
    ap.add_argument("--categories", nargs="+", default=list(CATEGORIES))
    ap.add_argument("--show", type=int, default=20, help="disagreements to print")
    ap.add_argument("--no-unusual-names", action="store_true", help="BFCL's own names only")
    args = ap.parse_args()
    checker = args.bfcl_src and args.bfcl_src / "bfcl_eval/eval_checker/ast_eval/ast_checker.py"
    if not checker or not checker.is_file():
        print(
            f"skipped: BFCL's checker not found (--bfcl-src {args.bfcl_src}); see {__file__}'s doc"
        )
        return 0
    if not args.bfcl.is_dir():
        print(f"skipped: BFCL data not found at {args.bfcl}")
        return 0
    return compare(args)


if __name__ == "__main__":
    raise SystemExit(main())
