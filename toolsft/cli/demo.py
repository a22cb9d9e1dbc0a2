"""`toolsft demo`: the whole loop on one suite with the embedded default model."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.table import Table

from toolsft.cli.params import SUITE, SUITE_HELP
from toolsft.cli.progress import StepBar, clock

if TYPE_CHECKING:
    from toolsft.demo.plan import Plan, Step
    from toolsft.demo.run import StepResult

HEADLINE = (
    ("task_completion", "task completion"),
    ("tool_selection", "tool selection"),
    ("irrelevance_recall", "irrelevance recall"),
    ("arg_accuracy", "argument accuracy"),
    ("schema_validity", "schema validity"),
    ("compliance_violations", "compliance violations"),
    ("bleu", "answer BLEU-4"),
    ("rouge_l", "answer ROUGE-L"),
)


@click.command("demo")
@click.option(
    "--suite",
    default="commerce",
    show_default=True,
    type=SUITE,
    help=SUITE_HELP,
)
@click.option(
    "--quick", is_flag=True, help="The same loop on tiny-random in about a minute (CI smoke)."
)
@click.option(
    "--model", default=None, help="Base model (default: smollm2-135m; tiny-random with --quick)."
)
@click.option(
    "--runs", default=Path("runs/demo"), type=click.Path(path_type=Path), show_default=True
)
@click.option(
    "--reports", default=Path("reports/demo"), type=click.Path(path_type=Path), show_default=True
)
@click.option(
    "--baseline",
    default=None,
    type=click.Path(path_type=Path),
    help="Gate baseline (default: evals/baselines/demo-<suite>-<budget>.json).",
)
@click.option("--seed", default=0, show_default=True)
@click.option(
    "--spent",
    default=0.0,
    type=click.FloatRange(min=0),
    show_default=True,
    help="Seconds of the time budget already used before this command started: `make demo` "
    "passes its set-up time, so set-up and demo together fit the budget.",
)
@click.option(
    "--budget",
    "budget_name",
    type=click.Choice(["quick", "cpu", "cpu-fp32", "gpu", "full", "full-cpu"]),
    help="A shipped budget (configs/demo/<name>.yaml) instead of the one chosen for this machine.",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="A budget file of your own (same format as configs/demo/*.yaml).",
)
@click.option(
    "--strict",
    is_flag=True,
    help="Exit 1 when the gate finds a regression against the baseline, 2 when it cannot "
    "compare (default: print the verdict and exit 0 once every step ran).",
)
@click.option(
    "--resume",
    is_flag=True,
    help="Continue a demo that stopped (a crash, Ctrl-C, a reboot): the steps an earlier run "
    "of the same plan finished (same budget file, suite, model, seed and folders; recorded in "
    "<runs>/logs/done.json) are not run again, and their time counts in the time budget.",
)
@click.option("--dry-run", is_flag=True, help="Print the budget and the steps, run nothing.")
def demo(
    budget_name: str | None,
    config_file: Path | None,
    strict: bool,
    suite: Path,
    quick: bool,
    model: str | None,
    runs: Path,
    reports: Path,
    baseline: Path | None,
    seed: int,
    spent: float,
    dry_run: bool,
    resume: bool,
) -> None:
    """The whole loop on the embedded default model, with the gain measured.

    gen -> eval the base model -> train stages 1, 2, 3 -> merge -> eval the final model, free
    and constrained, on the same test episodes as the base -> HTML + Markdown report ->
    significance of the gain -> gate against the budget's baseline. Per-stage scores belong
    to `toolsft curve`.

    On CPU the demo has a time budget (20 minutes, set-up included with `make demo`): the base
    model's evaluation sizes the final one, and each training stage gets its share of what is
    left (`train --max-time`), so the loop fits on slow and fast CPUs alike. It says before it
    starts when the machine is too slow to train enough steps for a gain. Exit 0 when every
    step ran (the gate's verdict is printed); --strict makes a regression exit 1.

    Every artifact lands under --runs and --reports; each step's log under <runs>/logs/.
    """
    from toolsft.demo.plan import build_plan, choose_budget, write_jobs
    from toolsft.demo.run import run_plan
    from toolsft.io import Terminated, sigterm_unwinds

    console = Console()
    from toolsft.shipped import shipped_baseline

    suite_dir = suite  # a folder the user names, else a shipped suite (see cli/params.py)
    if not (suite_dir / "suite.yaml").is_file():
        raise click.BadParameter(
            f"{suite_dir}: no suite.yaml (a shipped suite name or a folder)", param_hint="--suite"
        )
    from toolsft.hardware import cpu_has_bf16

    if budget_name and config_file:
        raise click.UsageError("give --budget or --config, not both")
    if quick and (budget_name or config_file):
        raise click.UsageError("--quick is the quick budget: leave out --budget/--config")
    gpu = _has_gpu()
    budget = choose_budget(
        quick=quick,
        gpu=gpu,
        model=model,
        bf16=cpu_has_bf16(),
        name=config_file or budget_name,
    )
    budget = _servable(console, budget)
    if budget.device == "cuda" and not gpu and not dry_run:
        raise click.UsageError(
            f"budget {budget.name!r} is sized for a GPU (device: cuda; its "
            f"{' / '.join(map(str, budget.max_steps))} steps would take many hours here) and "
            "this machine has none: `--budget full-cpu` is the long run for a CPU (150 "
            "minutes), `--budget cpu` or `cpu-fp32` the 20-minute demo"
        )
    baseline = baseline or shipped_baseline(f"demo-{suite_dir.name}-{budget.name}.json")
    plan = build_plan(suite_dir, budget, runs, reports, baseline, seed)
    console.print(_budget_table(plan))
    if spent:
        console.print(f"[dim]{spent:.0f} s of the time budget went to set-up before the demo[/]")
    _warn_if_too_slow(console, plan, spent)
    if dry_run:
        for step in plan.steps:
            timed = " --max-time <its share of the time left>" if step.time_share else ""
            console.print(f"[dim]{step.name:>26}[/]  toolsft {' '.join(step.argv)}{timed}")
        for job in plan.evals:
            console.print(f"[dim]{'scores':>26}[/]  {job.label}: {job.model} -> {job.report}")
        return
    write_jobs(plan)
    total = sum(s.est_s for s in plan.steps)
    t0 = time.perf_counter()
    # The bar's total is in estimated seconds; a log gets a line per tenth of each step.
    bar = StepBar(
        console, "starting", total=total, unit=None, width=28, fields=("step",), per_label=True
    )
    with bar:
        began = [0.0]  # the bar's position when the running step started

        def start(step: Step, eta_s: float) -> None:
            began[0] = bar.completed
            bar.update(label=step.name, total=began[0] + eta_s, fraction=0.0, step=_so_far(0, step))
            if "--max-time" in step.argv:
                secs = step.argv[step.argv.index("--max-time") + 1]
                bar.print(f"[dim]{step.name}: {secs} s of training in the time budget[/]")

        def tick(step: Step, secs: float) -> None:
            est = max(step.est_s, 1.0)
            share = min(secs / est, 0.99)  # an estimate, not a promise: never "done" early
            tenths = share if est >= 60 else None  # a short step's tenths would only be noise
            bar.update(completed=began[0] + share * est, fraction=tenths, step=_so_far(secs, step))

        def end(res: StepResult) -> None:
            if res.skipped:
                began[0] = bar.completed
                bar.update(completed=began[0] + res.seconds)
                bar.print(f"[dim]done before: {res.step.name} ({res.seconds:.0f} s, --resume)[/]")
                return
            bar.update(completed=began[0] + res.seconds, step=_so_far(res.seconds, res.step))
            mark = "[green]ok[/]" if res.returncode == 0 else "[red]failed[/]"
            bar.print(
                f"{mark} {res.step.name} ({res.seconds:.0f} s, peak RSS {res.peak_rss_mb / 1024:.1f} GB)"
            )

        try:
            with sigterm_unwinds():
                results = run_plan(
                    plan,
                    runs / "logs",
                    on_start=start,
                    on_end=end,
                    spent=spent,
                    on_tick=tick,
                    key=_plan_key(plan, suite_dir),
                    resume=resume,
                )
        except (KeyboardInterrupt, Terminated):
            bar.print(
                "[yellow]stopped: the steps that finished are kept; the same command with "
                "--resume continues from the one that did not[/]"
            )
            raise
    wall = time.perf_counter() - t0
    peak = max(r.peak_rss_mb for r in results) / 1024
    earlier = sum(r.seconds for r in results if r.skipped)
    _print_results(
        console,
        plan,
        f"total {wall / 60:.1f} min"
        + (f" (+ {earlier / 60:.1f} min of steps an earlier run finished)" if earlier else "")
        + (f" (+ {spent / 60:.1f} min of set-up: {(wall + spent) / 60:.1f})" if spent else "")
        + f", peak memory of any step {peak:.1f} GB, "
        f"optimizer steps per stage {_steps_trained(plan)}",
    )
    console.print(gain_verdict(plan))
    gate = next((r for r in results if r.step.name == "gate"), None)
    if gate is None:
        console.print(
            f"[yellow]no gate baseline at {baseline}[/]: create one with "
            f"toolsft gate {plan.final} --baseline {baseline} --update"
        )
    elif gate.returncode == 1:
        console.print(f"[red]gate: regression against {baseline}[/] (see {gate.log})")
        if strict:
            raise SystemExit(1)
    elif gate.returncode == 2:
        console.print(
            f"[yellow]gate: could not compare with {baseline}[/] ({_last_error(gate.log)}); "
            f"a baseline for this budget's episodes: toolsft gate {plan.final} --baseline "
            f"{baseline} --update"
        )
        if strict:
            raise SystemExit(2)
    else:
        console.print(f"[green]gate: passed against {baseline}[/]")


def _plan_key(plan: Plan, suite_dir: Path) -> str:
    """What `--resume` must find unchanged: the steps' command lines, the budget file and
    the suite's files."""
    from toolsft.demo.record import plan_key

    files = [p for p in suite_dir.rglob("*") if p.is_file()] + [plan.budget.file]
    return plan_key([s.argv for s in plan.steps], files)


def _so_far(secs: float, step: Step) -> str:
    """`4:55 of ~49:14`: the running step's time against its estimate."""
    return f"{clock(secs)} of ~{clock(step.est_s)}"


def _warn_if_too_slow(console: Console, plan: Any, spent: float) -> None:
    from toolsft.demo.run import expected_steps

    floor = plan.budget.demo.min_steps
    steps = expected_steps(plan, spent)
    if floor and steps < floor:
        console.print(
            f"[bold yellow]This machine is expected to train about {steps} optimizer steps in "
            f"the {plan.budget.demo.minutes:g}-minute budget; the learning curve needs about {floor} "
            "before the gain stands out from noise on this many episodes "
            "(docs/experiments.md). The demo runs the whole loop, but expect no significant "
            "gain here: `toolsft demo --budget gpu` on a GPU, or `toolsft curve`, shows one.[/]"
        )


def _last_error(log: Path) -> str:
    try:
        lines = [x for x in log.read_text(encoding="utf-8").splitlines() if x.startswith("Error:")]
    except OSError:
        return "no log"
    return lines[-1].removeprefix("Error: ") if lines else "see the log"


def gain_verdict(plan: Plan) -> str:
    """Whether the final model's 95% interval for task completion lies wholly above the base
    model's: a gain that noise does not explain."""
    figs = {}
    for job in plan.evals[:2]:
        metrics = json.loads((job.report / "results.json").read_text())["metrics"]
        figs[job.label] = metrics.get("task_completion") or {}
    base, final = figs.get("base", {}), figs.get("final", {})
    try:
        b_hi, f_lo = float(base["ci"][1]), float(final["ci"][0])
        n = int(final["n"])
    except (KeyError, TypeError, ValueError, IndexError):
        return "[yellow]gain: no interval to judge it by[/]"
    tag = "significant gain" if f_lo > b_hi else "[yellow]no significant gain[/]"
    return (
        f"{tag}: task completion {100 * base['value']:.1f}% -> {100 * final['value']:.1f}% "
        f"on {n} episodes (final's 95% interval starts at {100 * f_lo:.1f}%, the base's ends "
        f"at {100 * b_hi:.1f}%)"
    )


def _print_results(console: Console, plan: Plan, totals: str = "") -> None:
    """The headline table, then (after a complete run) the totals, then where to look."""
    console.print(headline_table(plan))
    if totals:
        console.print(totals)
    console.print(
        f"report: {plan.reports / 'report.html'} (and report.md); logs: {plan.runs / 'logs'}"
    )


def _steps_trained(plan: Plan) -> str:
    """Steps each stage ran (under a time budget they depend on the machine), from its
    metrics.json."""
    steps = []
    for stage in (1, 2, 3):
        path = plan.runs / f"stage{stage}" / "metrics.json"
        try:
            steps.append(str(json.loads(path.read_text())["global_step"]))
        except (OSError, ValueError, KeyError):
            steps.append("?")
    return " / ".join(steps)


def _servable(console: Console, budget: Any) -> Any:
    """vLLM where it is installed; else the transformers engine, said before the run."""
    from dataclasses import replace

    from toolsft.engines.registry import default_engine

    if budget.eval.engine == "vllm" and default_engine() != "vllm":
        console.print("[yellow]vLLM is not installed: evaluating with the transformers engine[/]")
        return replace(budget, eval=replace(budget.eval, engine="hf"))
    return budget


def _has_gpu() -> bool:
    """The same test scripts/setup_env.sh uses to pick the CUDA stack; it costs no torch
    import, so --dry-run and the budget table appear at once."""
    import shutil
    import subprocess

    if shutil.which("nvidia-smi") is None:
        return False
    return subprocess.run(["nvidia-smi", "-L"], capture_output=True).returncode == 0


def _budget_table(plan: Plan) -> Table:
    table = Table(title=f"toolsft demo: budget {plan.budget.name}", show_header=False)
    for k, v in plan.budget.describe():
        table.add_row(k, v)
    table.add_row("steps", str(len(plan.steps)))
    table.add_row("gate baseline", str(plan.baseline))
    if plan.budget.demo.minutes:
        table.add_row("estimated time", f"{plan.budget.demo.minutes:g} min (the time budget)")
    else:
        table.add_row("estimated time", f"{sum(s.est_s for s in plan.steps) / 60:.0f} min")
    return table


def headline_table(plan: Plan) -> Table:
    """Base vs each stage on the held-out test split, from the runs' results.json."""
    evals = plan.evals
    table = Table(title="held-out test split (unseen templates and values)")
    table.add_column("metric")
    for s in evals:
        table.add_column(s.label, justify="right")
    metrics = [
        json.loads((s.report / "results.json").read_text())["metrics"]
        if (s.report / "results.json").is_file()
        else {}
        for s in evals
    ]
    for key, label in HEADLINE:
        row = [label]
        for m in metrics:
            v = (m.get(key) or {}).get("value")
            row.append(
                "-"
                if v is None
                else (f"{v:.0f}" if key.endswith("violations") else f"{100 * v:.1f}%")
            )
        table.add_row(*row)
    return table
