"""Helpers for tests and benchmarks of the harness: small generated datasets, scripted runs.

Tests import it as `helpers` (pytest puts tests/ on sys.path); benchmarks put tests/ on
sys.path first, as they do for fixtures_train.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from toolsft.engines.base import Decoding
from toolsft.engines.replay import ReplayEngine, gold_script
from toolsft.eval.data import load_eval_data
from toolsft.eval.runner import EvalConfig, evaluate
from toolsft.shipped import shipped_suite
from toolsft.types import Example

DEFAULT_SUITE = shipped_suite("commerce")


def make_dataset(
    out: Path, suite: Path = DEFAULT_SUITE, per_stage: int = 60, seed: int = 0
) -> Path:
    """Generate a small dataset of `suite` into `out` (test split = 20% of per_stage)."""
    from toolsft.gen.pipeline import GenConfig, generate
    from toolsft.gen.writer import write_dataset
    from toolsft.schema.suite import load_suite

    s = load_suite(suite)
    cfg = GenConfig(seed=seed, per_stage=per_stage)
    result = generate(s, cfg)
    write_dataset(out, result.rows, result.manifest(s, cfg))
    return out


def scripted_run(
    data: Path,
    edit: Callable[[Example, int, str], str] | None = None,
    suite: Path = DEFAULT_SUITE,
    samples: int = 1,
    **cfg: Any,
) -> dict[str, Any]:
    """results.json of the gold turns, each passed through `edit(example, turn, text)`."""
    examples = load_eval_data(
        data,
        cfg.get("split", "test"),
        cfg.get("stages", (1, 2, 3)),
        cfg.get("limit"),
        cfg.get("seed", 0),
    ).examples
    engine = ReplayEngine(gold_script(examples, samples, edit))
    config = EvalConfig(
        suite=suite, data=data, samples=samples, decoding=cfg.pop("decoding", Decoding()), **cfg
    )
    return evaluate(engine, config)


def error_line(res: Any) -> str:
    """The CLI's one-line user error from a CliRunner result (exit 2, no traceback)."""
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output, res.output
    lines = [line for line in res.output.splitlines() if line.startswith("Error: ")]
    assert len(lines) == 1, res.output
    return lines[0]
