"""`toolsft eval` (episodes on the suite's executor, every metric) and `toolsft report` (HTML)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from toolsft.cli.eval_engine import build_engine, check_given_options, engine_option
from toolsft.cli.params import SUITE, SUITE_HELP
from toolsft.engines.registry import engine_names, get_engine


class FiniteRange(click.FloatRange):
    """A FloatRange that also refuses nan and inf: click lets nan through every bound."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{number} is not a finite number", param, ctx)
        return number


POSITIVE = FiniteRange(min=0, min_open=True)
AT_LEAST_1 = click.IntRange(min=1)


def _stages(text: str) -> tuple[int, ...]:
    try:
        stages = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError as exc:
        raise click.BadParameter(
            f"{text!r} is not a comma-separated list of stages", param_hint="--stages"
        ) from exc
    if not stages or any(s not in (1, 2, 3) for s in stages):
        raise click.BadParameter(f"{text!r}: stages are 1, 2, 3", param_hint="--stages")
    return stages


@click.command("eval")
@click.option(
    "--suite",
    "suite_path",
    type=SUITE,
    help=SUITE_HELP,
)
@click.option(
    "--data",
    type=click.Path(path_type=Path),
    help="Generated data folder (default: datasets/<suite folder name>).",
)
@click.option("--split", default="test", show_default=True)
@click.option("--stages", default="1,2,3", show_default=True, help="Stages to evaluate.")
@click.option("--limit", type=AT_LEAST_1, help="Rows per stage (a seeded sample); default all.")
@click.option(
    "--model",
    default="smollm2-135m",
    show_default=True,
    help="Alias (smollm2-135m, tiny-random), local folder or Hugging Face id.",
)
@click.option(
    "--adapter",
    type=click.Path(path_type=Path, exists=True, file_okay=False),
    help="LoRA adapter, e.g. runs/x/stage3.",
)
@click.option(
    "--engine",
    type=click.Choice(engine_names()),
    help="Default: vllm where it imports, else hf. gold replays the rows' targets.",
)
@engine_option("predictions", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@engine_option("base_url")
@engine_option("concurrency", type=AT_LEAST_1)
@engine_option("timeout", type=POSITIVE)
@engine_option("retries", type=click.IntRange(min=0))
@click.option(
    "--deadline",
    type=POSITIVE,
    help="Seconds the whole evaluation may take; past it the run stops, keeping its "
    "predictions for --resume.",
)
@click.option(
    "--resume",
    is_flag=True,
    help="Continue the interrupted run in --out: keep its predictions.jsonl, make only the "
    "missing ones (refused if the suite, data, model or options differ).",
)
@click.option(
    "--constrained/--free",
    default=False,
    show_default=True,
    help="Constrain tool calls to the shown tools' JSON Schemas (xgrammar).",
)
@click.option(
    "--tool-choice",
    type=click.Choice(["auto", "required"]),
    default="auto",
    show_default=True,
    help="required: every reply must start with a (constrained) call.",
)
@click.option("--max-tokens", default=192, type=AT_LEAST_1, show_default=True)
@click.option("--temperature", default=0.0, type=FiniteRange(min=0), show_default=True)
@click.option("--top-p", default=1.0, type=FiniteRange(0, 1, min_open=True), show_default=True)
@click.option(
    "--samples",
    default=1,
    type=AT_LEAST_1,
    show_default=True,
    help="Episodes per row; pass^k for k>1.",
)
@click.option(
    "--seed",
    default=0,
    type=click.IntRange(0, 2**32 - 1),
    show_default=True,
    help="Sampling, row sample, bootstrap.",
)
@click.option("--max-turns", default=4, type=AT_LEAST_1, show_default=True)
@engine_option("batch_size", type=AT_LEAST_1)
@engine_option("dtype", type=click.Choice(["auto", "float32", "bfloat16", "float16"]))
@engine_option("max_model_len", type=AT_LEAST_1)
@engine_option("kv_cache_gib", type=POSITIVE)
@engine_option("enforce_eager")
@click.option(
    "--bfcl",
    "bfcl_dir",
    type=click.Path(path_type=Path, exists=True, file_okay=False),
    help="Run on BFCL's public data instead of a suite (with --category).",
)
@click.option("--category", help="BFCL category: simple_python, multiple, parallel, ...")
@click.option(
    "--out", type=click.Path(path_type=Path), help="Output folder (default reports/<name>)."
)
@click.option("--name", default="", help="Run name shown in reports.")
@click.option(
    "--jobs",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="JSON list of {model, out, name?, constrained?}: score each model in turn with one "
    "engine (vLLM reloads same-architecture weights in place instead of restarting).",
)
@click.option(
    "--no-manifest",
    is_flag=True,
    help="Use a dataset without manifest.json (not from `toolsft gen`): its files go unverified.",
)
@click.option("--quiet", is_flag=True, help="Only the headline table.")
def eval_cmd(**o: Any) -> None:
    """Run a model through test episodes and score every part of the job.

    Each test row is an episode on the suite's own executor: calls are parsed, validated and
    executed, results go back, the model answers, the answer is scored. Writes results.json,
    report.md and predictions.jsonl.

    Example: toolsft eval --suite tool_schemas/commerce --model smollm2-135m
    --adapter runs/demo/stage3 --out reports/stage3
    """
    from toolsft.engines import Decoding, default_engine

    console = Console()
    engine_name = o["engine"] or default_engine()
    check_given_options(click.get_current_context(), engine_name, chosen=bool(o["engine"]))
    decoding = Decoding(
        max_tokens=o["max_tokens"],
        temperature=o["temperature"],
        top_p=o["top_p"],
        seed=o["seed"],
        constrained=o["constrained"],
        tool_choice=o["tool_choice"],
    )
    if o["samples"] > 1 and o["temperature"] == 0:
        console.print("[yellow]--samples > 1 with --temperature 0: greedy samples are identical")
    if o["bfcl_dir"]:
        _run_bfcl(console, engine_name, decoding, o)
    else:
        _run_suite(console, engine_name, decoding, o)


def _run_suite(console: Console, engine_name: str, decoding: Any, o: dict[str, Any]) -> None:
    from toolsft.cli.eval_jobs import read_jobs, run_jobs
    from toolsft.cli.progress import StepBar
    from toolsft.eval.data import load_eval_data
    from toolsft.eval.results import write_run
    from toolsft.eval.runner import EvalConfig, evaluate
    from toolsft.io import check_writable
    from toolsft.schema.suite import load_suite

    if not o["suite_path"]:
        raise click.UsageError("--suite is required (or --bfcl with --category)")
    if o["jobs"] and (get_engine(engine_name).serves != "weights" or o["adapter"]):
        local = " or ".join(engine_names(serves="weights"))
        raise click.UsageError(f"--jobs scores local models: --engine {local}, no --adapter")
    data = o["data"] or Path("datasets") / o["suite_path"].name
    name = o["name"] or _default_name(o, engine_name)
    cfg_kw = dict(
        suite=o["suite_path"],
        data=data,
        split=o["split"],
        stages=_stages(o["stages"]),
        limit=o["limit"],
        samples=o["samples"],
        seed=o["seed"],
        max_turns=o["max_turns"],
        decoding=decoding,
        name=name,
        require_manifest=not o["no_manifest"],
    )
    folder = o["out"] or Path("reports") / name
    jobs = read_jobs(o["jobs"]) if o["jobs"] else None
    if jobs is None:
        check_writable(folder, folder=True, option="--out")
    # Suite and rows are checked before an engine starts: a bad path must not cost a model load.
    rows = load_eval_data(
        data,
        o["split"],
        cfg_kw["stages"],
        o["limit"],
        o["seed"],
        load_suite(o["suite_path"]).hash,
        not o["no_manifest"],
    )
    if jobs is not None:
        run_jobs(console, engine_name, decoding, o, cfg_kw, jobs)
        return
    examples = rows.examples if get_engine(engine_name).needs_rows else None
    engine, ident = build_engine(engine_name, o["model"], o["adapter"], o, examples)
    n = len(rows.examples) * o["samples"]
    try:
        with StepBar(console, "eval", total=n, unit="episodes") as bar:
            results = evaluate(
                engine,
                EvalConfig(**cfg_kw, model=ident),
                progress=lambda t, left: bar.update(completed=n - left, label=f"eval turn {t}"),
                out=folder,
                resume=o["resume"],
                deadline_s=o["deadline"],
            )
    finally:
        engine.close()
    out = write_run(results, folder, predictions=False)  # evaluate() wrote them as it went
    _print(console, results, o["quiet"])
    console.print(f"wrote [bold]{out}[/] and {out.parent / 'report.md'}")


def _default_name(o: dict[str, Any], engine_name: str) -> str:
    if get_engine(engine_name).serves == "script":
        base = engine_name
    else:
        base = Path(o["adapter"]).name if o["adapter"] else Path(str(o["model"])).name
    return f"{base}-{engine_name}" + ("-constrained" if o["constrained"] else "")


def _print(console: Console, results: dict[str, Any], quiet: bool) -> None:
    from toolsft.eval.tables import group_rich, headline_table, perf_table

    console.print(headline_table(results))
    if quiet:
        return
    console.print(group_rich(results, "stage"))
    console.print(group_rich(results, "kind"))
    console.print(perf_table(results))


def _run_bfcl(console: Console, engine_name: str, decoding: Any, o: dict[str, Any]) -> None:
    import json

    from toolsft.eval.bfcl_run import load_entries, run_bfcl
    from toolsft.io import atomic_write, check_writable

    if not o["category"]:
        raise click.UsageError(
            "--bfcl needs --category (simple_python, multiple, parallel, "
            "parallel_multiple, irrelevance)"
        )
    if get_engine(engine_name).needs_rows:
        raise click.UsageError(
            f"--engine {engine_name} has no BFCL targets; use `toolsft bfcl-score`"
        )
    if o["resume"]:
        raise click.UsageError("--resume continues suite evaluations, not --bfcl runs")
    out = Path(
        o["out"] or Path("reports") / f"bfcl-{o['category']}-{_default_name(o, engine_name)}"
    )
    check_writable(out, folder=True, option="--out")
    # The data and the output folder are checked before an engine (a model load) starts.
    entries = load_entries(o["bfcl_dir"], o["category"], o["limit"])
    engine, _ = build_engine(engine_name, o["model"], o["adapter"], o)
    try:
        res = run_bfcl(
            engine, o["bfcl_dir"], o["category"], decoding, seed=o["seed"], entries=entries
        )
    finally:
        engine.close()
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "bfcl_results.json", json.dumps(res, ensure_ascii=False, indent=1) + "\n")
    acc = res["accuracy"]
    console.print(
        f"BFCL {o['category']}: accuracy [bold]{100 * acc['value']:.1f}%[/] "
        f"(95% CI {100 * acc['ci'][0]:.1f}–{100 * acc['ci'][1]:.1f}, n={acc['n']}); "
        f"errors: {res['errors']}"
    )
    console.print(f"wrote [bold]{out / 'bfcl_results.json'}[/]")


@click.command("report")
@click.argument("results", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--out",
    default="reports/report.html",
    show_default=True,
    type=click.Path(path_type=Path),
    help="HTML file to write.",
)
@click.option("--labels", help="Comma-separated column labels (default: run names).")
@click.option("--markdown", type=click.Path(path_type=Path), help="Also write a comparison table.")
@click.option(
    "--curve",
    "curve_file",
    type=click.Path(path_type=Path),
    help="A `toolsft curve` curve.json (or its folder): add the learning curve to the report.",
)
def report(
    results: tuple[Path, ...],
    out: Path,
    labels: str | None,
    markdown: Path | None,
    curve_file: Path | None,
) -> None:
    """Render an HTML report from one or more results.json (first = baseline for deltas).

    Example: toolsft report reports/base reports/stage1 reports/stage3 --out reports/demo.html
    """
    from toolsft.eval.html import compare_markdown, render_html
    from toolsft.eval.results import load_results
    from toolsft.eval.tables import compare_table
    from toolsft.io import atomic_write, check_writable

    # Both targets are checked first, so a bad --markdown cannot leave the HTML half done.
    check_writable(out, option="--out")
    if markdown:
        check_writable(markdown, option="--markdown")
    runs = [load_results(p) for p in results]
    names = (
        [x.strip() for x in labels.split(",")]
        if labels
        else [r["run"].get("name") or Path(r["_file"]).parent.name for r in runs]
    )
    if len(names) != len(runs):
        raise click.BadParameter(
            f"{len(names)} labels for {len(runs)} results", param_hint="--labels"
        )
    page = render_html(runs, names)
    if curve_file is not None:
        from toolsft.eval.curve import curve_html, load_curve

        page = page.replace("</body></html>", curve_html(load_curve(curve_file)) + "</body></html>")
    atomic_write(out, page)
    if markdown:
        atomic_write(markdown, compare_markdown(runs, names))
    console = Console()
    console.print(compare_table(runs, names))
    console.print(f"wrote [bold]{out}[/]")
