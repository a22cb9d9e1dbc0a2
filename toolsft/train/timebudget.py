"""Train for a time, not a number of steps: `train --max-time SECONDS`.

Machines differ several-fold in speed per token, so a fixed step count either overruns a time
budget on slow ones or wastes it on fast ones. `TimeBudget` stops a stage when the next step
would not finish in time, and drives the learning-rate schedule by the share of the time spent
instead of the share of steps: a cosine schedule decays to zero at the deadline whatever the
machine's speed (a step-based one, cut short, would stop at a high rate; a constant rate never
anneals).

Time counts from the first optimizer step, so model loading, data preparation and the first
checkpoint's save do not eat a stage's share. A step's rate is the schedule's value at the end
of that step (read just before the optimizer applies it), so the first warmup step trains at a
positive rate rather than at 0.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from transformers import TrainerCallback

Clock = Callable[[], float]

SCHEDULES: dict[str, Callable[[float, float], float]] = {
    # (fraction of time spent, warmup fraction) -> learning-rate multiplier, as transformers'
    # schedules of the same names are over steps.
    "constant": lambda f, w: 1.0,
    "constant_with_warmup": lambda f, w: min(1.0, f / w) if w else 1.0,
    "linear": lambda f, w: f / w if f < w else max(0.0, (1 - f) / (1 - w)),
    "cosine": lambda f, w: (
        f / w if f < w else max(0.0, 0.5 * (1 + math.cos(math.pi * min(1.0, (f - w) / (1 - w)))))
    ),
}


class TimeBudget(TrainerCallback):
    """Stop training once another step would pass `seconds`; tell the schedule how far along
    the stage is (`fraction`). The clock is injectable so that tests need no sleeping."""

    def __init__(
        self,
        seconds: float,
        schedule: str = "constant",
        warmup_ratio: float = 0.0,
        clock: Clock = time.monotonic,
    ) -> None:
        if seconds <= 0:
            raise ValueError(f"max_time = {seconds!r}: must be > 0")
        if schedule not in SCHEDULES:
            raise ValueError(
                f"lr_scheduler = {schedule!r}: with max_time it must be one of {sorted(SCHEDULES)}"
            )
        self.seconds = seconds
        self.shape = SCHEDULES[schedule]
        self.warmup_ratio = warmup_ratio
        self.clock = clock
        self.t0: float | None = None
        self.steps = 0
        self.stopped_early = False
        self._scheduler: Any = None

    def elapsed(self) -> float:
        return 0.0 if self.t0 is None else self.clock() - self.t0

    def fraction(self) -> float:
        """Share of the time spent, in [0, 1]."""
        return min(1.0, self.elapsed() / self.seconds)

    def on_step_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        if self.t0 is None:
            self.t0 = self.clock()

    def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        self.steps += 1
        mean_step = self.elapsed() / self.steps
        if self.elapsed() + mean_step > self.seconds and state.global_step < state.max_steps:
            # Another step would end past the deadline: stop here, saved like a last step.
            self.stopped_early = True
            control.should_training_stop = True
            control.should_save = True

    def on_pre_optimizer_step(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        """Set the rate of the step being taken from the time spent at its end (now)."""
        sched = self._scheduler
        if sched is None:
            return
        m = self.multiplier()
        for group, base in zip(sched.optimizer.param_groups, sched.base_lrs, strict=True):
            group["lr"] = base * m
        sched._last_lr = [g["lr"] for g in sched.optimizer.param_groups]  # what the trainer logs

    def multiplier(self) -> float:
        """The schedule's learning-rate multiplier at the share of time spent now."""
        return self.shape(self.fraction(), self.warmup_ratio)

    def scheduler(self, optimizer: Any) -> Any:
        """A LambdaLR that asks `multiplier` (its step count is ignored); the rate a step
        trains at is set again by `on_pre_optimizer_step`."""
        import torch

        self._scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda _step: self.multiplier()
        )
        return self._scheduler
