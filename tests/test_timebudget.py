"""`train --max-time`: a stage stops before its deadline and its schedule runs over the time."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import fixtures_train
import pytest
from fixtures_train import tiny_config

from toolsft.train.config import TIMED_SCHEDULES, ConfigError, TrainConfig
from toolsft.train.timebudget import SCHEDULES, TimeBudget

tiny_home = fixtures_train.tiny_home
tiny_data = fixtures_train.tiny_data


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _run(budget: TimeBudget, clock: FakeClock, step_s: float, max_steps: int = 1000) -> int:
    """Drive the callback like the trainer: steps of `step_s` seconds until it says stop."""
    state = SimpleNamespace(global_step=0, max_steps=max_steps)
    for _ in range(max_steps):
        control = SimpleNamespace(should_training_stop=False, should_save=False)
        budget.on_step_begin(None, state, control)
        clock.now += step_s
        state.global_step += 1
        budget.on_step_end(None, state, control)
        if control.should_training_stop:
            assert control.should_save  # the last step is saved like a final one
            break
    return state.global_step


def test_stops_before_the_deadline_whatever_the_speed() -> None:
    for step_s, want in ((3.0, 33), (10.0, 10), (0.7, 142)):
        clock = FakeClock()
        budget = TimeBudget(100.0, clock=clock)
        steps = _run(budget, clock, step_s)
        assert steps == want
        assert budget.elapsed() <= 100.0 and budget.stopped_early


def test_max_steps_still_caps_a_fast_machine() -> None:
    clock = FakeClock()
    budget = TimeBudget(100.0, clock=clock)
    assert _run(budget, clock, 1.0, max_steps=20) == 20
    assert not budget.stopped_early


def test_loading_before_the_first_step_is_not_counted() -> None:
    clock = FakeClock()
    budget = TimeBudget(50.0, clock=clock)
    clock.now += 1000  # model load and data preparation
    assert budget.fraction() == 0.0
    assert _run(budget, clock, 5.0) == 10


def test_cosine_over_time_warms_up_then_decays_to_zero_at_the_deadline() -> None:
    torch = pytest.importorskip("torch")
    clock = FakeClock()
    budget = TimeBudget(100.0, "cosine", warmup_ratio=0.1, clock=clock)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = budget.scheduler(opt)
    state = SimpleNamespace(global_step=0, max_steps=1000)
    lrs = []
    for _ in range(18):
        control = SimpleNamespace(should_training_stop=False, should_save=False)
        budget.on_step_begin(None, state, control)
        clock.now += 5.0
        budget.on_pre_optimizer_step(None, state, control)  # the trainer's order
        lrs.append(opt.param_groups[0]["lr"])
        assert sched.get_last_lr() == [lrs[-1]]  # what the trainer logs is what the step used
        opt.step()
        sched.step()
    # Each step trains at the schedule's value at its end: the first warmup step is not at 0.
    assert lrs[0] == pytest.approx(0.5)
    assert lrs[1] == pytest.approx(1.0)  # warmup over at 10% of the time
    assert lrs[2] == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.05 / 0.9)))
    assert all(a > b for a, b in zip(lrs[1:], lrs[2:], strict=False))  # decays after warmup
    clock.now = budget.t0 + 100.0
    assert budget.multiplier() == pytest.approx(0.0, abs=1e-12)


def test_constant_stays_put_and_linear_ends_at_zero() -> None:
    assert SCHEDULES["constant"](0.0, 0.0) == SCHEDULES["constant"](0.99, 0.0) == 1.0
    assert SCHEDULES["linear"](0.5, 0.0) == pytest.approx(0.5)
    assert SCHEDULES["linear"](1.0, 0.0) == 0.0
    assert SCHEDULES["constant_with_warmup"](0.05, 0.1) == pytest.approx(0.5)


def test_config_knows_the_timed_schedules_and_refuses_others() -> None:
    assert set(TIMED_SCHEDULES) == set(SCHEDULES)
    TrainConfig(max_time=60, lr_scheduler="cosine").validate()
    with pytest.raises(ConfigError, match=r"max_time: must be > 0 seconds \(-1\)"):
        TrainConfig(max_time=-1).validate()
    with pytest.raises(ConfigError, match=r"demo.yaml:lr_scheduler: .* \('inverse_sqrt'\)"):
        TrainConfig(max_time=60, lr_scheduler="inverse_sqrt").validate("demo.yaml")
    with pytest.raises(ValueError, match="must be > 0"):
        TimeBudget(0)


def test_a_timed_stage_trains_its_first_warmup_step_at_a_positive_rate(
    tiny_home: Path, tiny_data: Path, tmp_path: Path
) -> None:
    from toolsft.train.runner import train_stage

    cfg = tiny_config(max_time=600, warmup_ratio=0.5, lr_scheduler="cosine", max_val_rows=0)
    res = train_stage(1, tiny_data, tmp_path, cfg, tiny_home)
    lrs = [h["learning_rate"] for h in res.metrics["log_history"] if "learning_rate" in h]
    assert len(lrs) == res.metrics["global_step"] == cfg.max_steps
    assert 0 < lrs[0] <= lrs[-1] < cfg.learning_rate  # still warming up: 4 fast steps of 600 s
