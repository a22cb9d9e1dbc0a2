"""Plan the demo: the steps it runs for a budget (`toolsft.demo.budgets`), as pure data.

The plan is printed before anything runs, tested without a model, and executed one
subprocess per step (see `toolsft.demo.run`): each step returns its memory when it ends, and
vLLM's CPU engine gets the `__main__` process it needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from toolsft.demo.budgets import BUDGETS, Budget, choose_budget

__all__ = [
    "BUDGETS",
    "Budget",
    "EvalJob",
    "Plan",
    "Step",
    "build_plan",
    "choose_budget",
    "write_jobs",
]

TRAIN_OVERHEAD_S = 25.0
"""Seconds a training stage spends outside its steps: start-up, model load, data preparation,
the final save (measured 15-25 s on 2 cores; the model is converted before, in its own step)."""
PREPARE_S = 45.0
"""Seconds to build the model alias once (SmolLM2's GGUF -> safetensors on 2 cores); a second
run finds it cached and takes the start-up only."""


@dataclass(frozen=True)
class Step:
    name: str
    argv: tuple[str, ...]
    est_s: float
    """Estimated seconds, for the progress display's ETA (and the time budget)."""
    time_share: float = 0.0
    """A training stage under a time budget: its weight in the training time left, which the
    runner passes as `--max-time` when the step starts (`toolsft.demo.budget`)."""
    overhead_s: float = 0.0
    """Seconds a timed step spends outside its `--max-time` (loading, saving)."""
    like: tuple[str, float] | None = None
    """Estimate this step as `factor` times what step `name` took, once that one has run."""
    ok_codes: tuple[int, ...] = (0,)
    """Exit codes that let the run go on (the gate's 1, a regression, is a verdict)."""
    fresh: tuple[Path, ...] = ()
    """Files removed before the step runs from the start: an evaluation refuses to write over
    the predictions of an earlier run that was stopped half-way."""
    resume_argv: tuple[str, ...] = ()
    """Added when `demo --resume` continues this step, the one an earlier run stopped in,
    instead of starting it over (`eval --resume` keeps the predictions already made)."""


@dataclass(frozen=True)
class EvalJob:
    """One scored model: a column of the comparison report."""

    label: str
    model: str
    report: Path
    constrained: bool = False

    def as_json(self) -> dict[str, object]:
        return {
            "name": self.label,
            "model": self.model,
            "out": str(self.report),
            "constrained": self.constrained,
        }


@dataclass(frozen=True)
class Plan:
    budget: Budget
    steps: tuple[Step, ...]
    evals: tuple[EvalJob, ...]
    jobs_file: Path
    """The eval step's --jobs file; the demo writes it from `evals` before running."""
    runs: Path
    reports: Path
    baseline: Path
    final: Path
    """results.json that the gate judges."""
    stale: tuple[Path, ...] = ()
    """Files a run deletes before it starts: the gate appends to its markdown (for CI step
    summaries), so a second `make demo` would otherwise show both runs' verdicts."""


def build_plan(
    suite: Path, budget: Budget, runs: Path, reports: Path, baseline: Path, seed: int = 0
) -> Plan:
    b = budget
    data = runs / "data"
    # gen and train read their settings from the budget file itself; the argv adds only what
    # the demo decides (paths, the model, the seed).
    config = ("--config", str(b.file))
    steps: list[Step] = [
        # The GGUF -> safetensors conversion (once per machine) gets a step of its own, so the
        # base model's evaluation, which sizes the final one, times the evaluation alone.
        Step("prepare model", ("prepare-model", b.model), PREPARE_S),
        Step(
            "gen",
            (
                "gen",
                *("--suite", str(suite), "--out", str(data), *config),
                *("--seed", str(seed), "--overwrite"),
            ),
            10,
        ),
    ]
    train_common = (
        *config,
        *("--data", str(data), "--out", str(runs), "--model", b.model),
        *("--seed", str(seed), "--overwrite"),
    )
    evals = [EvalJob("base", b.model, reports / "base")]
    eval_common: tuple[str, ...] = (
        "eval",
        *("--suite", str(suite), "--data", str(data), "--split", "test"),
        *("--limit", str(b.eval.rows), "--seed", str(seed), "--engine", b.eval.engine),
        "--quiet",
    )
    if b.eval.engine == "vllm":
        eval_common += ("--enforce-eager",)  # compiling costs more than it saves on 60 episodes
    if b.model == "tiny-random":
        eval_common += ("--max-tokens", "48")
    fast = b.device == "cpu"
    start_s = 5.0 if b.eval.engine == "hf" else 30.0
    per_model_s = b.demo.eval_s if fast else 5.0
    # The base model first, on its own engine: what it took sizes the final evaluation, so the
    # training stages can have the rest of the time budget.
    steps.append(
        Step(
            "eval base",
            (*eval_common, "--model", b.model, "--name", "base", "--out", str(evals[0].report)),
            start_s + per_model_s,
            fresh=_predictions(evals[0].report),
            resume_argv=("--resume",),
        )
    )
    for stage, n in enumerate(b.max_steps, start=1):
        steps.append(
            Step(
                f"train stage {stage}",
                ("train", "--stage", str(stage), *train_common)
                # one checkpoint, at the end: the demo evaluates the final model only
                + ("--save-steps", str(max(n, 1))),
                10 + n * b.demo.step_s,
                time_share=b.demo.stage_shares[stage - 1] if b.demo.minutes else 0.0,
                overhead_s=TRAIN_OVERHEAD_S,
            )
        )
    # vLLM on CPU runs LoRA ~8x slower than a merged model: score merged weights. Per-stage
    # scores belong to `toolsft curve`; the demo scores the base and the final model only.
    merged = runs / "final-merged"
    steps.append(
        Step(
            "export final",
            ("export", "--run", str(runs), "--stage", "3", "--merge")
            + ("--out", str(merged), "--overwrite"),  # a second `make demo` replaces the first's
            15,
        )
    )
    evals += [
        EvalJob("final", str(merged), reports / "final"),
        EvalJob("final constrained", str(merged), reports / "final-constrained", True),
    ]
    jobs_file = runs / "eval-jobs.json"
    # One engine scores both (free and constrained): an engine start costs more than scoring
    # on CPU. Trained models answer in a call or a sentence where the base model often talks
    # until max_tokens, so the two cost about `final_eval_factor` base evaluations.
    steps.append(
        Step(
            "eval final",
            (*eval_common, "--jobs", str(jobs_file)),
            start_s + (len(evals) - 1) * per_model_s,
            like=("eval base", b.demo.final_eval_factor),
            fresh=tuple(f for e in evals[1:] for f in _predictions(e.report)),
            resume_argv=("--resume",),
        )
    )
    steps.append(
        Step(
            "report",
            (
                "report",
                *(str(e.report) for e in evals),
                *("--labels", ",".join(e.label for e in evals)),
                *("--out", str(reports / "report.html")),
                *("--markdown", str(reports / "report.md")),
            ),
            5,
        )
    )
    final_results = reports / "final" / "results.json"
    if baseline.is_file():
        steps.append(
            Step(
                "gate",
                (
                    "gate",
                    *(str(final_results), "--baseline", str(baseline)),
                    *("--markdown", str(reports / "gate.md")),
                ),
                3,
                ok_codes=(0, 1, 2),  # a regression or a baseline it cannot compare: a verdict
            )
        )
    stale = (reports / "gate.md",)
    return Plan(
        b, tuple(steps), tuple(evals), jobs_file, runs, reports, baseline, final_results, stale
    )


def _predictions(report: Path) -> tuple[Path, ...]:
    """What `toolsft eval` keeps in --out for `--resume`."""
    from toolsft.eval.resume import PREDICTIONS, RESUME

    return (report / PREDICTIONS, report / RESUME)


def write_jobs(plan: Plan) -> Path:
    """The final eval step's --jobs file (JSON): every evaluation but the base model's, which
    runs first on its own."""
    import json

    from toolsft.io import atomic_write

    jobs = [e.as_json() for e in plan.evals[1:]]
    atomic_write(plan.jobs_file, json.dumps(jobs, indent=1) + "\n")
    return plan.jobs_file
