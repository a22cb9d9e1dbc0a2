"""Run a demo plan: one `toolsft` subprocess per step, logs kept, progress reported.

Each step runs in its own process so its memory is returned when it ends (the 8 GB ceiling
holds step by step) and vLLM's CPU engine starts from a real `__main__`. A failed step stops
the run; its log names what went wrong, and everything written before it stays on disk.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from toolsft.demo.plan import Plan, Step
from toolsft.demo.record import Finished, clear_record, read_record, write_record
from toolsft.errors import ToolsftError

logger = logging.getLogger(__name__)
_MAXRSS_PER_MB = 2**20 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB


@dataclass(frozen=True)
class StepResult:
    step: Step
    returncode: int
    seconds: float
    log: Path
    peak_rss_mb: float
    skipped: bool = False
    """Finished by an earlier run (`--resume`): seconds and exit code are that run's."""


class StepFailed(ToolsftError, RuntimeError):
    def __init__(self, result: StepResult) -> None:
        tail = _tail(result.log, 25)
        super().__init__(
            f"step '{result.step.name}' failed (exit {result.returncode}); log: {result.log}; "
            f"once fixed, the same command with --resume continues from this step\n{tail}"
        )
        self.result = result


MIN_TRAIN_S = 30.0
"""A stage never gets less than this, however late the run is: a few steps, not none."""


def estimate(step: Step, measured: dict[str, float]) -> float:
    """Seconds `step` should take: scaled from the step it is `like` once that one has run."""
    if step.like and step.like[0] in measured:
        return measured[step.like[0]] * step.like[1]
    return step.est_s


def stage_seconds(plan: Plan, i: int, elapsed: float, measured: dict[str, float]) -> float:
    """`--max-time` for timed step `i`, started `elapsed` seconds into the run: its share of
    the target left after the margin, the later untimed steps' estimates and every timed
    step's overhead."""
    rest = plan.steps[i:]
    fixed = sum(s.overhead_s if s.time_share else estimate(s, measured) for s in rest)
    left = _target_left(plan, elapsed) - fixed
    shares = sum(s.time_share for s in rest)
    return max(MIN_TRAIN_S, left * plan.steps[i].time_share / shares)


def remaining_s(plan: Plan, i: int, elapsed: float, measured: dict[str, float]) -> float:
    """Estimated seconds from `elapsed` (the start of step `i`) to the end of the run: under a
    time budget with training still to come, the training fills the target."""
    rest = plan.steps[i:]
    if plan.budget.demo.minutes and any(s.time_share for s in rest):
        floor = sum(
            s.overhead_s + MIN_TRAIN_S if s.time_share else estimate(s, measured) for s in rest
        )
        return max(_target_left(plan, elapsed), floor)
    return sum(estimate(s, measured) for s in rest)


def expected_steps(plan: Plan, spent: float = 0.0) -> int:
    """Optimizer steps the training stages should fit in the time budget, from the
    budget's estimates (0 without a time budget: then max_steps decide)."""
    if not plan.budget.demo.minutes:
        return sum(plan.budget.max_steps)
    prior = {s.name: s.est_s for s in plan.steps}  # a `like` step scales its model's estimate
    fixed = sum(s.overhead_s if s.time_share else estimate(s, prior) for s in plan.steps)
    left = max(_target_left(plan, spent) - fixed, 0.0)
    trained = [s for s in plan.steps if s.time_share]
    floor = len(trained) * MIN_TRAIN_S
    return int(max(left, floor) / plan.budget.demo.step_s)


def _target_left(plan: Plan, elapsed: float) -> float:
    """Seconds of the time budget left `elapsed` seconds in, less the margin."""
    return plan.budget.demo.minutes * 60 - plan.budget.demo.margin_s - elapsed


def run_plan(
    plan: Plan,
    logs: Path,
    on_start: Callable[[Step, float], None] | None = None,
    on_end: Callable[[StepResult], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    spent: float = 0.0,
    on_tick: Callable[[Step, float], None] | None = None,
    tick_s: float = 5.0,
    key: str = "",
    resume: bool = False,
) -> list[StepResult]:
    """Run every step in order. A timed training step (`Step.time_share`) gets `--max-time`
    from what is left of the budget when it starts; `spent` seconds of it were used before the
    run (`make demo`'s set-up). `on_start` gets the step as it runs and the estimated seconds
    left in the whole run; `on_tick` the step and its seconds so far, every `tick_s` while it
    runs (a 150-minute run must not sit silent for an hour-long stage); `on_end` each result.

    Each finished step is recorded under `key` (`toolsft.demo.record`). With `resume`, the
    steps an earlier run of the same plan finished are skipped (their results, with
    `skipped`, go to `on_end`), and their seconds count as spent: the time budget covers the
    whole demo, as if they had just run."""
    logs.mkdir(parents=True, exist_ok=True)
    finished = _resumable(plan, read_record(logs, key)) if resume else []
    if not resume:
        clear_record(logs)
    # an earlier run's step logs (numbered by its own plan) would sit beside this run's
    kept = {_log(logs, i, s).name for i, s in enumerate(plan.steps[: len(finished)])}
    stale = plan.stale if len(finished) < len(plan.steps) else ()
    for path in (*stale, *logs.glob("[0-9][0-9]-*.log")):
        if path.name not in kept or path in stale:
            path.unlink(missing_ok=True)
    done: list[StepResult] = []
    measured: dict[str, float] = {}
    t0 = clock() - spent - sum(f.seconds for f in finished)
    for i, step in enumerate(plan.steps):
        if i < len(finished):
            res = StepResult(
                step, finished[i].returncode, finished[i].seconds, _log(logs, i, step), 0.0, True
            )
        else:
            if resume and i == len(finished) and step.resume_argv:
                step = replace(step, argv=(*step.argv, *step.resume_argv))  # where it stopped
            else:
                for path in step.fresh:
                    path.unlink(missing_ok=True)
            res = _run_one(plan, i, step, logs, measured, clock() - t0, on_start, on_tick, tick_s)
        done.append(res)
        measured[step.name] = res.seconds
        if on_end:
            on_end(res)
        if res.returncode not in step.ok_codes:
            raise StepFailed(res)
        write_record(logs, key, [Finished(r.step.name, r.seconds, r.returncode) for r in done])
    return done


def _resumable(plan: Plan, record: list[Finished]) -> list[Finished]:
    """The longest prefix of the plan's steps that the record lists, in the same order."""
    out: list[Finished] = []
    for step, fin in zip(plan.steps, record, strict=False):
        if fin.name != step.name or fin.returncode not in step.ok_codes:
            break
        out.append(fin)
    return out


def _log(logs: Path, i: int, step: Step) -> Path:
    return logs / f"{i:02d}-{re.sub(r'[^A-Za-z0-9]+', '_', step.name).strip('_')}.log"


def _run_one(
    plan: Plan,
    i: int,
    step: Step,
    logs: Path,
    measured: dict[str, float],
    elapsed: float,
    on_start: Callable[[Step, float], None] | None,
    on_tick: Callable[[Step, float], None] | None,
    tick_s: float,
) -> StepResult:
    """Step `i`, `elapsed` seconds into the time budget: a timed stage gets its `--max-time`."""
    if step.time_share and plan.budget.demo.minutes:
        secs = stage_seconds(plan, i, elapsed, measured)
        step = replace(
            step, argv=(*step.argv, "--max-time", f"{secs:.0f}"), est_s=secs + step.overhead_s
        )
    else:  # the final eval's estimate scales with the base eval's measured time
        step = replace(step, est_s=estimate(step, measured))
    if on_start:
        on_start(step, remaining_s(plan, i, elapsed, measured))
    tick = (lambda secs: on_tick(step, secs)) if on_tick else None
    return run_step(step, _log(logs, i, step), tick, tick_s)


def run_step(
    step: Step,
    log: Path,
    on_tick: Callable[[float], None] | None = None,
    tick_s: float = 5.0,
) -> StepResult:
    """Run one step as `python -m toolsft.cli ...`, its output into `log`; `on_tick` gets the
    seconds so far every `tick_s` while it runs."""
    argv = [sys.executable, "-m", "toolsft.cli", *step.argv]
    logger.info("running %s", " ".join(argv))
    t0 = time.perf_counter()
    with log.open("w", encoding="utf-8") as fh:
        fh.write("$ toolsft " + " ".join(step.argv) + "\n")
        fh.flush()
        proc = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            rc, peak = _wait(proc, on_tick, tick_s, t0)
        except BaseException:  # Ctrl-C, SIGTERM: the step must not outlive the demo
            _stop(proc)
            raise
    return StepResult(step, rc, time.perf_counter() - t0, log, peak)


def _wait(
    proc: subprocess.Popen[bytes],
    on_tick: Callable[[float], None] | None,
    tick_s: float,
    t0: float,
    poll_s: float = 0.1,
) -> tuple[int, float]:
    """The step's exit code and its own peak RSS in MB: wait4's rusage covers that process
    and the children it waited for (vLLM's engine core), where RUSAGE_CHILDREN would give
    the largest of all steps so far (a 6-second gen was printed with the model
    conversion's 1.2 GB)."""
    if not hasattr(os, "wait4"):  # pragma: no cover - non-Unix
        return proc.wait(), 0.0
    next_tick = t0 + tick_s
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return proc.returncode, usage.ru_maxrss / _MAXRSS_PER_MB
        now = time.perf_counter()
        if on_tick and now >= next_tick:
            on_tick(now - t0)
            next_tick = now + tick_s
        time.sleep(min(poll_s, tick_s))


def _stop(proc: subprocess.Popen[bytes], grace_s: float = 30.0) -> None:
    """SIGTERM (train and eval then remove their partial output), SIGKILL after `grace_s`."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _tail(path: Path, n: int) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-n:])
    except OSError:
        return ""
