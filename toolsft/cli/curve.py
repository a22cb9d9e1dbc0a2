"""`toolsft curve`: train with snapshots, score each on one fixed episode set, plot the curve."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from toolsft.cli.eval_engine import check_given_options, engine_option
from toolsft.cli.home import toolsft_home
from toolsft.cli.params import SUITE, SUITE_HELP
from toolsft.engines.registry import engine_names, engine_options


@click.command("curve")
@click.option(
    "--suite",
    "suite_path",
    required=True,
    type=SUITE,
    help=SUITE_HELP,
)
@click.option(
    "--data", required=True, type=click.Path(path_type=Path), help="A `toolsft gen` folder."
)
@click.option(
    "--score-data",
    type=click.Path(path_type=Path),
    help="Score on this `toolsft gen` folder's --split instead of --data's: a data variant "
    "trained on its own rows is scored on the same episodes as the run it is compared with.",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(path_type=Path),
    help="Run folder: stage<N>/, snapshots/ and curve/ go here; a rerun continues it.",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Training YAML, as `toolsft train --config` reads it (per-stage sections allowed).",
)
@click.option("--model", help="Base model alias or folder (overrides the config).")
@click.option("--max-steps", type=int, help="Optimizer steps per stage (overrides the config).")
@click.option("--stages", default="1,2,3", show_default=True, help="Stages to train, in order.")
@click.option(
    "--split",
    default="val",
    show_default=True,
    help="Split the points are scored on. Decide on val; score test once per decision.",
)
@click.option(
    "--episodes",
    default=300,
    show_default=True,
    type=click.IntRange(min=1),
    help="Episodes in the fixed set (at least).",
)
@click.option(
    "--per-kind",
    default=20,
    show_default=True,
    type=click.IntRange(min=0),
    help="At least this many episodes of each kind.",
)
@click.option(
    "--first-point",
    default=25,
    show_default=True,
    type=click.IntRange(min=1),
    help="Snapshots at this many optimizer steps, then 2x, 4x, ... and at each stage's end.",
)
@click.option(
    "--engine",
    type=click.Choice(engine_names(swaps=True)),
    help="Default: vllm where it imports, else hf. gold scores the rows' own targets "
    "(a harness check: every point 100%).",
)
@click.option("--constrained/--free", default=False, show_default=True)
@engine_option("batch_size", type=click.IntRange(min=1))
@engine_option("enforce_eager")
@click.option("--seed", default=0, show_default=True, help="Episode pick, sampling, intervals.")
@click.option(
    "--score-only", is_flag=True, help="Train nothing: score the snapshots already in --out."
)
def curve(**o: Any) -> None:
    """Learning curve: quality against optimizer steps, on one fixed episode set.

    Trains the stages as `toolsft train --all --resume` would, saving the adapter at
    --first-point, 2x, 4x, ... steps of each stage; then scores the base model, every snapshot
    and every finished stage with one engine on the same stratified episodes (>= --episodes,
    >= --per-kind of each kind, --split val by default). Writes <out>/curve/curve.json (every
    figure with its 95% interval and n, by stage and kind), curve.svg and curve.md; each
    point's results.json stays under curve/points/. A killed run continues where it stopped.

    Example: toolsft curve --suite tool_schemas/commerce --data datasets/commerce
    --out runs/curve --config configs/demo/gpu.yaml
    """
    from toolsft.cli.train import _passive_omp

    _passive_omp()
    from toolsft.demo.curve import CurveConfig, pick_episodes, points_of, write_curve
    from toolsft.engines import default_engine

    console = Console(stderr=True)
    stages = _stages(o["stages"])
    engine = o["engine"] or default_engine()
    check_given_options(click.get_current_context(), engine, chosen=bool(o["engine"]))
    cfg = CurveConfig(
        suite=o["suite_path"],
        data=o["data"],
        out=o["out"],
        stages=stages,
        split=o["split"],
        episodes=o["episodes"],
        per_kind=o["per_kind"],
        first_point=o["first_point"],
        engine=engine,
        engine_opts=_engine_opts(engine, o),
        constrained=o["constrained"],
        seed=o["seed"],
        score_data=o["score_data"],
    )
    episodes = pick_episodes(cfg)
    console.print(
        f"episode set: {episodes['n']} {cfg.split} episodes, by kind "
        + ", ".join(f"{k} {v}" for k, v in sorted(episodes["by_kind"].items()))
    )
    configs = _configs(o, stages)
    if not o["score_only"]:
        from toolsft.cli.train import _run
        from toolsft.demo.curve import train_points

        home = toolsft_home()
        _run(console, lambda sink: train_points(cfg, configs, home, sink))
    base = _base_model(configs[stages[0]].model)
    points = points_of(cfg.out, stages, toolsft_home())
    entries = _score(console, cfg, points, episodes, base)
    path = write_curve(cfg, entries, episodes)
    _print(console, path)


def _stages(text: str) -> tuple[int, ...]:
    try:
        stages = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise click.BadParameter(f"{text!r}: a comma-separated list of 1, 2, 3") from None
    if not stages or list(stages) != list(range(stages[0], stages[0] + len(stages))):
        raise click.BadParameter(f"{text!r}: consecutive stages in order, e.g. 1,2,3")
    if stages[0] != 1 or stages[-1] > 3:
        raise click.BadParameter(f"{text!r}: the curve trains from stage 1 (1, 1,2 or 1,2,3)")
    return stages


def _configs(o: dict[str, Any], stages: tuple[int, ...]) -> dict[int, Any]:
    from toolsft.train.config import load_config

    flags = {k: v for k, v in (("model", o["model"]), ("max_steps", o["max_steps"])) if v}
    configs = {s: load_config(o["config_file"], s, flags) for s in stages}
    if any(c.method == "full" for c in configs.values()):
        raise click.UsageError(
            "a curve swaps LoRA adapters in one engine: method 'full' is not supported here"
        )
    return configs


def _engine_opts(engine: str, o: dict[str, Any]) -> dict[str, Any]:
    """The engine's options (the registry's defaults for those curve does not declare) and
    the seed it samples with."""
    return {**engine_options(engine, o), "seed": o["seed"]}


def _base_model(name: str) -> Path:
    from toolsft.models import resolve_model

    return Path(resolve_model(name, toolsft_home()))


def _score(console: Console, cfg: Any, points: Any, episodes: Any, base: Path) -> list:
    from toolsft.cli.progress import StepBar
    from toolsft.demo.curve import score_points

    with StepBar(console, "scoring", total=len(points), unit="points") as bar:

        def progress(name: str, done: int, total: int) -> None:
            label = f"scoring {name}" if name else "scored"
            bar.update(completed=len(points) - total + done, label=label)

        return score_points(cfg, points, episodes, base, progress)


def _print(console: Console, path: Path) -> None:
    import json

    from toolsft.eval.curve import curve_rows

    doc = json.loads(path.read_text(encoding="utf-8"))
    rows = curve_rows(doc)
    table = Table(title=f"learning curve on {doc['episodes']['n']} {doc['run']['split']} episodes")
    for head in rows[0]:
        table.add_column(head)
    for row in rows[1:]:
        table.add_row(*row)
    console.print(table)
    console.print(f"curve: {path} (plot: {path.with_suffix('.svg')})")
