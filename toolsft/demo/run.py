"""Run a demo plan: one `toolsft` subprocess per step, logs kept, progress reported.

Each step runs in its own process so its memory is returned when it ends (the 8 GB ceiling
holds step by step) and vLLM's CPU engine starts from a real `__main__`. A failed step stops
the run; its log names what went wrong, and everything written before it stays on disk.
"""

from __future__ import annotations

import logging
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from toolsft.demo.plan import Plan, Step

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StepResult:
    step: Step
    returncode: int
    seconds: float
    log: Path
    peak_rss_mb: float


class StepFailed(RuntimeError):
    def __init__(self, result: StepResult) -> None:
        tail = _tail(result.log, 25)
        super().__init__(
            f"step '{result.step.name}' failed (exit {result.returncode}); log: {result.log}\n{tail}"
        )
        self.result = result


def run_plan(
    plan: Plan,
    logs: Path,
    on_start: Callable[[Step], None] | None = None,
    on_end: Callable[[StepResult], None] | None = None,
) -> list[StepResult]:
    logs.mkdir(parents=True, exist_ok=True)
    for path in plan.stale:
        path.unlink(missing_ok=True)
    done: list[StepResult] = []
    for i, step in enumerate(plan.steps):
        if on_start:
            on_start(step)
        res = run_step(
            step,
            logs / f"{i:02d}-{re.sub(r'[^A-Za-z0-9]+', '_', step.name).strip('_')}.log",
        )
        done.append(res)
        if on_end:
            on_end(res)
        if res.returncode != 0:
            raise StepFailed(res)
    return done


def run_step(step: Step, log: Path) -> StepResult:
    argv = [sys.executable, "-m", "toolsft.cli", *step.argv]
    logger.info("running %s", " ".join(argv))
    t0 = time.perf_counter()
    with log.open("w", encoding="utf-8") as fh:
        fh.write("$ toolsft " + " ".join(step.argv) + "\n")
        fh.flush()
        proc = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        rc = proc.wait()
    peak = _peak_rss_mb()
    return StepResult(step, rc, time.perf_counter() - t0, log, peak)


def _peak_rss_mb() -> float:
    """Peak resident memory of the largest finished child so far (Linux reports KiB)."""
    try:
        import resource

        return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    except (ImportError, OSError):  # pragma: no cover - non-Unix
        return 0.0


def _tail(path: Path, n: int) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-n:])
    except OSError:
        return ""
