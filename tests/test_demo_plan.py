"""The demo plan is pure data: its steps, their order and the gate wiring."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from toolsft.demo.plan import BUDGETS, build_plan, choose_budget, write_jobs


def test_budget_choice() -> None:
    assert choose_budget(quick=True, gpu=False).model == "tiny-random"
    assert choose_budget(quick=False, gpu=False).device == "cpu"
    assert choose_budget(quick=False, gpu=True).gen.per_stage > BUDGETS["cpu"].gen.per_stage
    mine = choose_budget(quick=False, gpu=False, model="my/model")
    assert mine.model == "my/model" and {c.model for c in mine.train} == {"my/model"}


def test_cpu_without_bf16_gets_the_fp32_budget_judged_like_the_cpu_one() -> None:
    """An AVX2-only CPU trains in fp32 (~4-5x slower): the same 20 minutes hold fewer steps,
    which a constant rate without warmup uses best; the same rows generated and scored (>= 100
    episodes per model), each budget gated against its own runs (fp32 machines score lower)."""
    fp32 = choose_budget(quick=False, gpu=False, bf16=False)
    cpu = choose_budget(quick=False, gpu=False, bf16=True)
    assert fp32.name == "cpu-fp32" and cpu.name == "cpu"
    assert fp32.demo.minutes == cpu.demo.minutes == 20
    assert {(c.lr_scheduler, c.warmup_ratio) for c in fp32.train} == {("constant", 0.0)}
    assert fp32.gen == cpu.gen and fp32.eval == cpu.eval
    assert fp32.gen.show_all and fp32.gen.suite_order
    assert 3 * fp32.eval.rows >= 100
    plan = build_plan(Path("tool_schemas/commerce"), fp32, Path("r"), Path("p"), Path("b.json"))
    gen = next(s for s in plan.steps if s.name == "gen").argv
    assert gen[gen.index("--config") + 1] == str(fp32.file)  # gen reads the budget's own file


def test_plan_runs_the_curriculum_in_order(tmp_path: Path) -> None:
    baseline = tmp_path / "base.json"
    baseline.write_text("{}")
    plan = build_plan(
        Path("tool_schemas/commerce"),
        BUDGETS["quick"],
        tmp_path / "runs",
        tmp_path / "reports",
        baseline,
    )
    names = [s.name for s in plan.steps]
    assert names[:4] == ["prepare model", "gen", "eval base", "train stage 1"]
    assert names[3:] == [
        "train stage 1",
        "train stage 2",
        "train stage 3",
        "export final",
        "eval final",
        "report",
        "gate",
    ]
    train2 = next(s for s in plan.steps if s.name == "train stage 2")
    assert train2.argv[train2.argv.index("--out") + 1] == str(tmp_path / "runs")
    assert train2.argv[train2.argv.index("--config") + 1] == str(BUDGETS["quick"].file)
    # per-stage scores belong to `toolsft curve`: the demo scores the base and the final model
    assert [e.label for e in plan.evals] == ["base", "final", "final constrained"]
    assert [e.constrained for e in plan.evals] == [False, False, True]
    export = next(s for s in plan.steps if s.name == "export final")
    assert export.argv[export.argv.index("--stage") + 1] == "3"
    assert plan.evals[1].model == export.argv[export.argv.index("--out") + 1]
    assert [e.report.name for e in plan.evals] == ["base", "final", "final-constrained"]
    assert plan.final == tmp_path / "reports" / "final" / "results.json"
    report = next(s for s in plan.steps if s.name == "report")
    assert report.argv.count("--labels") == 1 and str(tmp_path / "reports" / "base") in report.argv
    gate = next(s for s in plan.steps if s.name == "gate")
    assert gate.ok_codes == (0, 1, 2)  # a verdict the demo prints, not a crash


def test_eval_step_scores_every_model_from_the_jobs_file(tmp_path: Path) -> None:
    import json

    plan = build_plan(
        Path("tool_schemas/commerce"), BUDGETS["cpu"], tmp_path, tmp_path, tmp_path / "b.json"
    )
    base = next(s for s in plan.steps if s.name == "eval base")
    assert base.argv[base.argv.index("--model") + 1] == "smollm2-135m"
    assert base.argv[base.argv.index("--out") + 1] == str(plan.evals[0].report)
    step = next(s for s in plan.steps if s.name == "eval final")
    assert step.argv[step.argv.index("--jobs") + 1] == str(plan.jobs_file)
    assert "--enforce-eager" in step.argv and "--engine" in step.argv
    assert step.like == ("eval base", step.like[1]) and step.like[1] > 0
    jobs = json.loads(write_jobs(plan).read_text())
    assert [j["out"] for j in jobs] == [str(e.report) for e in plan.evals[1:]]
    assert jobs[-1]["constrained"] is True and jobs[0]["name"] == "final"
    limit = int(step.argv[step.argv.index("--limit") + 1])
    assert 3 * limit >= 100  # every model on >= 100 episodes (three stages' test rows)


def test_no_gate_step_without_a_baseline(tmp_path: Path) -> None:
    plan = build_plan(
        Path("tool_schemas/commerce"), BUDGETS["cpu"], tmp_path, tmp_path, tmp_path / "missing.json"
    )
    assert "gate" not in [s.name for s in plan.steps]


def _fake_reports(reports: Path, base: float, final: float, n: int = 102) -> None:
    import json

    for col, tc in (("base", base), ("final", final), ("final-constrained", final)):
        (reports / col).mkdir(parents=True)
        fig = {"value": tc, "ci": [max(0.0, tc - 0.08), min(1.0, tc + 0.08)], "n": n}
        (reports / col / "results.json").write_text(
            json.dumps({"metrics": {"task_completion": fig}})
        )


@pytest.mark.parametrize(
    ("gate_rc", "strict", "exit_code", "said"),
    [
        (1, False, 0, "gate: regression"),
        (1, True, 1, "gate: regression"),
        (2, False, 0, "gate: could not compare"),
        (2, True, 2, "gate: could not compare"),
        (0, True, 0, "gate: passed"),
    ],
)
def test_the_gate_verdict_is_printed_and_fails_only_with_strict(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    gate_rc: int,
    strict: bool,
    exit_code: int,
    said: str,
) -> None:
    from click.testing import CliRunner

    import toolsft.demo.run as run
    from toolsft.cli.main import cli

    reports, baseline = tmp_path / "reports", tmp_path / "base.json"
    baseline.write_text("{}")
    _fake_reports(reports, 0.05, 0.5)
    log = tmp_path / "gate.log"
    log.write_text("$ toolsft gate\nError: base.json:rows: other episodes\n")

    def fake_run(plan, logs, on_start=None, on_end=None, spent=0.0, **_):  # type: ignore[no-untyped-def]
        return [
            run.StepResult(s, gate_rc if s.name == "gate" else 0, 0.1, log, 1.0) for s in plan.steps
        ]

    monkeypatch.setattr(run, "run_plan", fake_run)
    args = ["demo", "--quick", "--runs", str(tmp_path / "runs"), "--reports", str(reports)]
    args += ["--baseline", str(baseline)] + (["--strict"] if strict else [])
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == exit_code, res.output
    assert "held-out test split" in res.output and "50.0%" in res.output
    assert said in res.output
    if gate_rc == 2:
        assert "other episodes" in res.output
    assert "significant gain: task completion 5.0% -> 50.0% on 102 episodes" in res.output


def test_no_significant_gain_is_said_plainly(tmp_path: Path) -> None:
    from toolsft.cli.demo import gain_verdict

    plan = build_plan(
        Path("tool_schemas/commerce"), BUDGETS["quick"], tmp_path, tmp_path / "rep", tmp_path / "b"
    )
    _fake_reports(tmp_path / "rep", 0.05, 0.12)
    assert "no significant gain" in gain_verdict(plan)


def test_a_slow_machine_is_told_before_the_demo_starts(tmp_path: Path) -> None:
    from dataclasses import replace

    from toolsft.demo.run import expected_steps

    slow = replace(BUDGETS["cpu"], demo=replace(BUDGETS["cpu"].demo, min_steps=400))
    plan = build_plan(Path("tool_schemas/commerce"), slow, tmp_path, tmp_path, tmp_path / "b")
    steps = expected_steps(plan, spent=220)
    assert 0 < steps < 400
    assert expected_steps(plan, spent=0) > steps  # set-up time comes out of training


class _Loaded(Exception):
    """Stops `toolsft train` once its configs are loaded, before any data or model."""


def _train_configs(argv: tuple[str, ...], monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The TrainConfigs `toolsft train <argv>` loads: the real command, up to its data check."""
    from click.testing import CliRunner

    import toolsft.train.config as config
    import toolsft.train.data as data
    from toolsft.cli.train import train

    loaded: list[Any] = []
    real = config.load_config

    def record(*args: Any, **kw: Any) -> Any:
        loaded.append(real(*args, **kw))
        return loaded[-1]

    def stop(*args: Any, **kw: Any) -> None:
        raise _Loaded

    monkeypatch.setattr(config, "load_config", record)
    monkeypatch.setattr(data, "check_dataset", stop)
    assert argv[0] == "train"
    res = CliRunner().invoke(train, list(argv[1:]))
    assert isinstance(res.exception, _Loaded), res.output
    return loaded


def test_every_budget_trains_with_the_settings_it_prints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each stage's train argv, run through `toolsft train`'s own options and loader, gives
    the TrainConfig the budget loaded and describes; the demo adds only the seed, the model
    and one checkpoint at the end."""
    from dataclasses import replace

    (tmp_path / "data").mkdir()  # --data must exist
    for b in (*BUDGETS.values(), BUDGETS["cpu"].with_model("tiny-random")):
        plan = build_plan(Path("tool_schemas/commerce"), b, tmp_path, tmp_path, tmp_path / "x", 5)
        trains = [s for s in plan.steps if s.name.startswith("train")]
        for stage, step in enumerate(trains, start=1):
            assert step.argv[step.argv.index("--data") + 1] == str(tmp_path / "data")
            want = replace(b.train[stage - 1], seed=5, save_steps=max(b.max_steps[stage - 1], 1))
            assert _train_configs(step.argv, monkeypatch) == [want], (b.name, stage)
    cpu = BUDGETS["cpu"]
    assert [c.decision_weight for c in cpu.train] == [8.0, 8.0, 1.0]
    shown = dict(cpu.describe())["loss weight of deciding tokens"]
    assert shown.startswith("8x in stages 1,2 (a turn")
    assert dict(BUDGETS["quick"].describe())["loss weight of deciding tokens"].startswith("1x")


def test_a_new_run_starts_without_the_last_gate_verdict(tmp_path: Path, monkeypatch) -> None:
    """`gate --markdown` appends; the demo deletes the old file so that its gate.md holds
    this run's verdict only."""
    import toolsft.demo.run as run

    baseline = tmp_path / "base.json"
    baseline.write_text("{}")
    plan = build_plan(
        Path("tool_schemas/commerce"), BUDGETS["quick"], tmp_path, tmp_path / "rep", baseline
    )
    gate_md = next(s for s in plan.steps if s.name == "gate").argv[-1]
    assert Path(gate_md) in plan.stale
    Path(gate_md).parent.mkdir(parents=True)
    Path(gate_md).write_text("| an earlier run's verdict |\n")
    seen: list[bool] = []
    old_log = tmp_path / "logs" / "07-eval_base_and_stages_1_3.log"  # an older plan's step
    old_log.parent.mkdir()
    old_log.write_text("an earlier run\n")

    def fake_step(step, log, *_):  # type: ignore[no-untyped-def]
        seen.append(Path(gate_md).exists() or old_log.exists())
        return run.StepResult(step, 0, 0.0, log, 1.0)

    monkeypatch.setattr(run, "run_step", fake_step)
    run.run_plan(plan, tmp_path / "logs")
    assert seen and not any(seen)


def _timed_plan(tmp_path: Path, minutes: float = 20):  # type: ignore[no-untyped-def]
    from dataclasses import replace

    b = BUDGETS["cpu"]
    budget = replace(b, demo=replace(b.demo, minutes=minutes, margin_s=60))
    return build_plan(Path("tool_schemas/commerce"), budget, tmp_path, tmp_path, tmp_path / "b")


def test_training_stages_share_what_the_other_steps_leave(tmp_path: Path) -> None:
    """Each stage's --max-time is its share of the target left after the margin, the later
    steps' estimates (the final eval scaled from the base eval once measured) and overheads."""
    from toolsft.demo.run import estimate, stage_seconds

    plan = _timed_plan(tmp_path)
    i = [s.name for s in plan.steps].index("train stage 1")
    timed = [s for s in plan.steps if s.time_share]
    assert [s.time_share for s in timed] == list(plan.budget.demo.stage_shares)
    measured = {"gen": 2.0, "eval base": 50.0}
    final = next(s for s in plan.steps if s.name == "eval final")
    assert final.like == ("eval base", plan.budget.demo.final_eval_factor)
    assert estimate(final, measured) == 50.0 * final.like[1]
    assert estimate(final, {}) == final.est_s
    untimed_later = sum(estimate(s, measured) for s in plan.steps[i:] if not s.time_share)
    overheads = sum(s.overhead_s for s in timed)
    left = 20 * 60 - 60 - 52.0 - untimed_later - overheads
    got = stage_seconds(plan, i, 52.0, measured)
    assert got == pytest.approx(left * 85 / (85 + 75 + 65))
    # a late start leaves less, but never nothing
    assert stage_seconds(plan, i, 200.0, measured) < got
    assert stage_seconds(plan, i, 5000.0, measured) == 30.0


def test_run_plan_passes_each_stage_its_time_and_fits_the_target(
    tmp_path: Path, monkeypatch
) -> None:
    """A simulated run on a fake clock: every step takes what it is told (training its
    --max-time plus overhead); the whole run ends within the target."""
    import toolsft.demo.run as run

    plan = _timed_plan(tmp_path, minutes=10)
    now = [0.0]
    given: dict[str, float] = {}
    etas: list[float] = []

    def fake_step(step, log, *_):  # type: ignore[no-untyped-def]
        if "--max-time" in step.argv:
            given[step.name] = float(step.argv[step.argv.index("--max-time") + 1])
            took = given[step.name] + step.overhead_s
        else:
            took = {"eval base": 40.0, "eval final": 75.0}.get(step.name, 10.0)
        now[0] += took
        return run.StepResult(step, 0, took, log, 1.0)

    monkeypatch.setattr(run, "run_step", fake_step)
    run.run_plan(
        plan, tmp_path / "logs", on_start=lambda s, eta: etas.append(eta), clock=lambda: now[0]
    )
    assert list(given) == ["train stage 1", "train stage 2", "train stage 3"]
    assert given["train stage 1"] > given["train stage 2"] > given["train stage 3"] > 30
    assert 10 * 60 - 60 - 20 < now[0] <= 10 * 60  # the margin stays free, little else does
    assert etas[0] == pytest.approx(10 * 60 - 60, abs=1)


def test_the_model_is_prepared_before_anything_is_timed(tmp_path: Path) -> None:
    """The one-time GGUF conversion must not inflate the base model's evaluation, whose time
    sizes the final one."""
    for b in BUDGETS.values():
        plan = build_plan(Path("tool_schemas/commerce"), b, tmp_path, tmp_path, tmp_path / "x")
        names = [s.name for s in plan.steps]
        assert names[0] == "prepare model" and names.index("eval base") > 0
        assert plan.steps[0].argv == ("prepare-model", b.model)


def test_time_spent_on_set_up_comes_out_of_training(tmp_path: Path, monkeypatch) -> None:
    """`make demo` passes its set-up time as --spent: the training stages get that much less
    and the run, set-up included, still ends within the target."""
    import toolsft.demo.run as run

    def simulate(spent: float) -> tuple[float, float]:
        plan = _timed_plan(tmp_path, minutes=10)
        now = [0.0]
        trained = [0.0]

        def fake_step(step, log, *_):  # type: ignore[no-untyped-def]
            took = {"eval base": 40.0, "eval final": 75.0}.get(step.name, 10.0)
            if "--max-time" in step.argv:
                took = float(step.argv[step.argv.index("--max-time") + 1])
                trained[0] += took
                took += step.overhead_s
            now[0] += took
            return run.StepResult(step, 0, took, log, 1.0)

        monkeypatch.setattr(run, "run_step", fake_step)
        run.run_plan(plan, tmp_path / "logs", clock=lambda: now[0], spent=spent)
        return trained[0], spent + now[0]

    trained0, total0 = simulate(0.0)
    trained, total = simulate(120.0)
    assert trained == pytest.approx(trained0 - 120, abs=1)
    assert total <= 10 * 60 and total == pytest.approx(total0, abs=1)


def test_a_gpu_budget_on_a_machine_without_one_is_refused_before_anything_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    import toolsft.cli.demo as demo
    import toolsft.demo.run as run
    from toolsft.cli.main import cli

    ran: list[str] = []
    monkeypatch.setattr(demo, "_has_gpu", lambda: False)
    monkeypatch.setattr(run, "run_plan", lambda plan, *a, **k: ran.append("ran") or [])
    args = ["demo", "--runs", str(tmp_path / "runs"), "--reports", str(tmp_path / "rep")]
    for name in ("full", "gpu"):
        res = CliRunner().invoke(cli, [*args, "--budget", name])
        assert res.exit_code == 2, res.output
        assert f"budget '{name}' is sized for a GPU" in res.output and "full-cpu" in res.output
    assert CliRunner().invoke(cli, [*args, "--budget", "full", "--dry-run"]).exit_code == 0
    assert not ran and not (tmp_path / "runs").exists()


def test_the_cli_offers_every_shipped_budget() -> None:
    from toolsft.cli.demo import demo
    from toolsft.demo.budgets import BUDGET_NAMES

    budget = next(p for p in demo.params if p.name == "budget_name")
    assert tuple(budget.type.choices) == BUDGET_NAMES  # type: ignore[attr-defined]


def test_full_cpu_scores_300_episodes_in_a_150_minute_budget() -> None:
    b = BUDGETS["full-cpu"]
    assert b.device == "cpu" and b.demo.minutes == 150 and 3 * b.eval.rows >= 300
    assert b.model == BUDGETS["full"].model and b.gen.show_all


def test_a_running_step_reports_its_time_until_it_ends(tmp_path: Path) -> None:
    """A long step (an hour-long stage of `full-cpu`) is not silent: `run_step` calls back
    with the seconds so far while the process runs, and stops when it ends."""
    import toolsft.demo.run as run
    from toolsft.demo.plan import Step

    ticks: list[float] = []
    res = run.run_step(Step("help", ("--help",), 1.0), tmp_path / "x.log", ticks.append, 0.02)
    assert res.returncode == 0 and "Usage:" in (tmp_path / "x.log").read_text()
    assert ticks and ticks == sorted(ticks) and ticks[-1] <= res.seconds


def test_the_demo_logs_a_line_per_tenth_of_each_step(tmp_path: Path, monkeypatch) -> None:
    """In a log (no terminal) the demo prints each step's tenths as they pass, by its time
    against its estimate, capped below 100% until it ends: not one line per step."""
    from click.testing import CliRunner

    import toolsft.demo.run as run
    from toolsft.cli.main import cli

    reports = tmp_path / "reports"
    _fake_reports(reports, 0.05, 0.5)

    def fake_run(plan, logs, on_start=None, on_end=None, spent=0.0, on_tick=None, **_):  # type: ignore[no-untyped-def]
        from dataclasses import replace

        out = []
        for s in [replace(s, est_s=10.0 if s.name == "gen" else 100.0) for s in plan.steps]:
            on_start(s, 100.0)
            for k in range(1, 31):  # 3x the estimate: the tenths stop at 90%
                on_tick(s, (k + 0.5) * s.est_s / 10)
            out.append(run.StepResult(s, 0, 3 * s.est_s, tmp_path / "x.log", 1.0))
            on_end(out[-1])
        return out

    monkeypatch.setattr(run, "run_plan", fake_run)
    args = ["demo", "--quick", "--runs", str(tmp_path / "runs"), "--reports", str(reports)]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    lines = [x for x in res.output.splitlines() if x.startswith("train stage 2:")]
    assert [x for x in res.output.splitlines() if x.startswith("gen:")] == [
        "gen: 0%, step 0:00 of ~0:10"  # a step under a minute: its first line only
    ]
    pcts = ["0"] + [f"{10 * k + 5}" for k in range(1, 10)]
    assert [x.split(",")[0] for x in lines] == [f"train stage 2: {p}%" for p in pcts]
    assert lines[1].endswith(" of ~" + lines[0].split("~")[1])  # the step's time, its estimate


def _fake_steps(now: list[float], fail: str = "", gate_rc: int = 0):  # type: ignore[no-untyped-def]
    """A run_step on a fake clock that logs what it ran and can fail one step."""
    import toolsft.demo.run as run

    ran: list[tuple[str, str]] = []

    def fake_step(step, log, *_):  # type: ignore[no-untyped-def]
        max_time = step.argv[step.argv.index("--max-time") + 1] if "--max-time" in step.argv else ""
        ran.append((step.name, max_time))
        took = float(max_time) + step.overhead_s if max_time else 20.0
        now[0] += took
        log.write_text(f"{step.name}\n")
        rc = 1 if step.name == fail else gate_rc if step.name == "gate" else 0
        return run.StepResult(step, rc, took, log, 1.0)

    return fake_step, ran


def test_resume_skips_what_an_earlier_run_finished_and_keeps_its_time(
    tmp_path: Path, monkeypatch
) -> None:
    """A run killed in stage 2, resumed: the finished steps are not run again (their logs
    stay), stage 2 gets the --max-time it had the first time (the finished steps' seconds
    count in the budget), and everything from stage 2 on runs."""
    import toolsft.demo.run as run

    plan = _timed_plan(tmp_path, minutes=10)
    logs = tmp_path / "logs"
    now = [0.0]
    fake, first = _fake_steps(now, fail="train stage 2")
    monkeypatch.setattr(run, "run_step", fake)
    with pytest.raises(run.StepFailed):
        run.run_plan(plan, logs, clock=lambda: now[0], key="k")
    names = [s.name for s in plan.steps]
    cut = names.index("train stage 2")
    now[0] = 1e6  # another day
    fake, second = _fake_steps(now)
    monkeypatch.setattr(run, "run_step", fake)
    results = run.run_plan(plan, logs, clock=lambda: now[0], key="k", resume=True)
    assert [n for n, _ in second] == names[cut:]
    assert second[0] == first[-1]  # the same --max-time for the stage that failed
    assert [r.skipped for r in results] == [True] * cut + [False] * (len(names) - cut)
    assert [r.seconds for r in results[:cut]] == [20.0, 20.0, 20.0, float(first[cut - 1][1]) + 25]
    assert (logs / "03-train_stage_1.log").read_text() == "train stage 1\n"  # kept


def test_resume_runs_everything_for_another_plan_or_after_a_fresh_run(
    tmp_path: Path, monkeypatch
) -> None:
    import toolsft.demo.run as run

    (tmp_path / "b").write_text("{}")  # a baseline: the plan ends with the gate
    plan = _timed_plan(tmp_path, minutes=10)
    logs, now = tmp_path / "logs", [0.0]
    fake, _ = _fake_steps(now, gate_rc=1)
    monkeypatch.setattr(run, "run_step", fake)
    run.run_plan(plan, logs, clock=lambda: now[0], key="k")
    fake, ran = _fake_steps(now)
    monkeypatch.setattr(run, "run_step", fake)
    results = run.run_plan(plan, logs, clock=lambda: now[0], key="k", resume=True)
    assert ran == [] and all(r.skipped for r in results)
    assert results[-1].step.name == "gate" and results[-1].returncode == 1  # its verdict kept
    run.run_plan(plan, logs, clock=lambda: now[0], key="other", resume=True)
    assert len(ran) == len(plan.steps)  # another budget, suite or seed: nothing to resume
    fake, ran = _fake_steps(now, fail="prepare model")
    monkeypatch.setattr(run, "run_step", fake)
    with pytest.raises(run.StepFailed):
        run.run_plan(plan, logs, clock=lambda: now[0], key="other")  # a fresh run, stopped
    fake, ran = _fake_steps(now)
    monkeypatch.setattr(run, "run_step", fake)
    run.run_plan(plan, logs, clock=lambda: now[0], key="other", resume=True)
    assert [n for n, _ in ran] == [s.name for s in plan.steps]


def test_the_plan_key_sees_the_files_the_command_lines_do_not(tmp_path: Path) -> None:
    from toolsft.demo.record import plan_key

    budget, tools = tmp_path / "budget.yaml", tmp_path / "tools.json"
    budget.write_text("gen: {}\n")
    tools.write_text("[]")
    argv = [("gen", "--seed", "0")]
    key = plan_key(argv, [budget, tools])
    assert plan_key(argv, [tools, budget]) == key
    assert plan_key([("gen", "--seed", "1")], [budget, tools]) != key
    tools.write_text("[{}]")
    assert plan_key(argv, [budget, tools]) != key


def test_a_stopped_demo_stops_its_running_step(tmp_path: Path, monkeypatch) -> None:
    """Ctrl-C or SIGTERM while a step runs: the step's process is stopped too (an orphaned
    training stage would hold the CPU and race a --resume), and the interrupt goes on."""
    import os
    import types

    import toolsft.demo.run as run
    from toolsft.demo.plan import Step

    pid_file = tmp_path / "pid"
    fake = tmp_path / "python"
    fake.write_text(f"#!/bin/sh\necho $$ > {pid_file}\nexec sleep 60\n")
    fake.chmod(0o755)
    monkeypatch.setattr(run, "sys", types.SimpleNamespace(executable=str(fake)))

    def interrupt(secs: float) -> None:
        if pid_file.exists() and pid_file.read_text().strip():
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run.run_step(Step("train stage 1", ("train",), 60.0), tmp_path / "x.log", interrupt, 0.05)
    pid = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_an_evaluation_stopped_half_way_starts_over_or_continues_with_resume(
    tmp_path: Path, monkeypatch
) -> None:
    """`toolsft eval` refuses to write over an unfinished run's predictions: a new demo
    removes them first; `demo --resume` continues that evaluation with `eval --resume`."""
    import toolsft.demo.run as run

    plan = _timed_plan(tmp_path, minutes=10)
    base = next(s for s in plan.steps if s.name == "eval base")
    assert base.fresh and base.resume_argv == ("--resume",)
    logs, now = tmp_path / "logs", [0.0]
    fake, _ = _fake_steps(now, fail="eval base")
    monkeypatch.setattr(run, "run_step", fake)
    with pytest.raises(run.StepFailed):
        run.run_plan(plan, logs, clock=lambda: now[0], key="k")
    for path in base.fresh:  # what the stopped evaluation left
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("half\n")
    seen: dict[str, tuple[tuple[str, ...], bool]] = {}

    def look(step, log, *_):  # type: ignore[no-untyped-def]
        seen[step.name] = (step.argv, any(p.exists() for p in step.fresh))
        return run.StepResult(step, 0, 1.0, log, 1.0)

    monkeypatch.setattr(run, "run_step", look)
    run.run_plan(plan, logs, clock=lambda: now[0], key="k", resume=True)
    assert seen["eval base"][0][-1] == "--resume" and seen["eval base"][1]  # kept, continued
    assert "--resume" not in seen["eval final"][0]
    for path in base.fresh:
        path.write_text("half\n")
    run.run_plan(plan, logs, clock=lambda: now[0], key="k")  # a new demo: start it over
    assert "--resume" not in seen["eval base"][0] and not seen["eval base"][1]


STEP_PEAKS = """
import json, sys, types
from pathlib import Path
import toolsft.demo.run as run
from toolsft.demo.plan import Step

tmp, fake = Path(sys.argv[1]), sys.argv[2]
run.sys = types.SimpleNamespace(executable=fake)
peaks = [run.run_step(Step(f"alloc {mb}", (mb,), 1.0), tmp / f"{mb}.log").peak_rss_mb
         for mb in ("400", "1")]
print(json.dumps(peaks))
"""


def test_each_step_reports_its_own_peak_memory(tmp_path: Path) -> None:
    """A step that allocates 400 MB, then one that allocates 1 MB: the second is not printed
    with the first one's peak (RUSAGE_CHILDREN gives the largest step so far). Driven from a
    small process: a child's peak includes what its parent held when it started."""
    import subprocess
    import sys

    fake = tmp_path / "python"
    alloc = (
        "import sys; b = bytearray(int(sys.argv[-1]) * 2**20); b[::4096] = b'x' * len(b[::4096])"
    )
    fake.write_text(f'#!/bin/sh\nexec {sys.executable} -c "{alloc}" "$@"\n')
    fake.chmod(0o755)
    out = subprocess.run(
        [sys.executable, "-c", STEP_PEAKS, str(tmp_path), str(fake)],
        capture_output=True,
        text=True,
        check=True,
    )
    big, small = json.loads(out.stdout.strip().splitlines()[-1])
    assert big >= 400 and small < 200, (big, small)
