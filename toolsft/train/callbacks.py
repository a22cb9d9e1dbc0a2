"""Trainer callbacks: progress events for the CLI, and per-stage metrics.

The library never prints. `ProgressCallback` turns trainer events into `Progress` records and
hands them to a sink (the CLI's rich progress bar) and to the logger.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from transformers import TrainerCallback

logger = logging.getLogger(__name__)


@dataclass
class Progress:
    """One progress update: where training is, how fast, and what the loss says."""

    stage: int
    step: int
    total_steps: int
    loss: float | None = None
    eval_loss: float | None = None
    learning_rate: float | None = None
    tokens: int = 0
    tokens_per_s: float = 0.0
    """Training tokens (padding excluded) per second of optimizer steps: evaluation and
    checkpoint time do not count, so the figure is comparable across eval settings."""
    elapsed_s: float = 0.0
    eta_s: float | None = None
    event: str = "step"  # "begin", "step", "log", "eval", "end"


ProgressSink = Callable[[Progress], None]


@dataclass
class ProgressCallback(TrainerCallback):
    """Emit `Progress` on every step, log and evaluation; also keep the log history."""

    stage: int
    sink: ProgressSink | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    max_time: float | None = None
    """`train --max-time`: the ETA is the time left when that comes before max_steps."""
    _t0: float = 0.0
    _start_step: int = 0
    _start_tokens: int = 0
    _step_t0: float = 0.0
    _train_s: float = 0.0
    _last: Progress | None = None

    def _emit(self, state: Any, event: str, **kw: Any) -> None:
        elapsed = time.monotonic() - self._t0
        steps_done = state.global_step - self._start_step
        tokens = int(state.num_input_tokens_seen or 0)
        rate = (tokens - self._start_tokens) / self._train_s if self._train_s > 0 else 0.0
        eta = (elapsed / steps_done) * (state.max_steps - state.global_step) if steps_done else None
        if self.max_time is not None and eta is not None:
            eta = max(0.0, min(eta, self.max_time - self._train_s))
        prev = self._last
        p = Progress(
            stage=self.stage,
            step=state.global_step,
            total_steps=state.max_steps,
            loss=kw.get("loss", prev.loss if prev else None),
            eval_loss=kw.get("eval_loss", prev.eval_loss if prev else None),
            learning_rate=kw.get("learning_rate", prev.learning_rate if prev else None),
            tokens=tokens,
            tokens_per_s=rate,
            elapsed_s=elapsed,
            eta_s=eta,
            event=event,
        )
        self._last = p
        if self.sink is not None:
            self.sink(p)

    def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        self._t0 = time.monotonic()
        self._start_step = state.global_step
        self._start_tokens = int(state.num_input_tokens_seen or 0)
        logger.info(
            "stage %d: training from step %d to %d", self.stage, state.global_step, state.max_steps
        )
        self._emit(state, "begin")

    def on_step_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        self._step_t0 = time.monotonic()

    def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        self._train_s += time.monotonic() - self._step_t0
        self._emit(state, "step")

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict | None = None, **kw: Any
    ) -> None:
        logs = dict(logs or {})
        self.history.append({"step": state.global_step, **logs})
        if "eval_loss" in logs:
            logger.info(
                "stage %d step %d: eval_loss %.4f", self.stage, state.global_step, logs["eval_loss"]
            )
            self._emit(state, "eval", eval_loss=logs["eval_loss"])
        elif "loss" in logs:
            logger.info(
                "stage %d step %d/%d: loss %.4f",
                self.stage,
                state.global_step,
                state.max_steps,
                logs["loss"],
            )
            self._emit(state, "log", loss=logs["loss"], learning_rate=logs.get("learning_rate"))

    def on_train_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        self._emit(state, "end")

    @property
    def tokens_per_s(self) -> float:
        return self._last.tokens_per_s if self._last else 0.0


class Interrupted(RuntimeError):
    """Raised by `StopAfterStep`."""


class StopAfterStep(TrainerCallback):
    """Raise after optimizer step `step`: simulates a kill for resume tests and smoke runs."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        if state.global_step >= self.step:
            raise Interrupted(f"interrupted after step {state.global_step} (StopAfterStep)")


@contextmanager
def quiet_progress_bars() -> Iterator[None]:
    """datasets/transformers draw tqdm bars on stderr; the library leaves display to the CLI."""
    from transformers.utils import logging as hf_logging

    import datasets

    ds_was_on = not datasets.are_progress_bars_disabled()
    hf_was_on = hf_logging.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if ds_was_on:
            datasets.enable_progress_bars()
        if hf_was_on:
            hf_logging.enable_progress_bar()
