"""`toolsft eval --jobs`: several local models scored in turn through one engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console

from toolsft.cli.home import toolsft_home
from toolsft.errors import ToolsftError
from toolsft.io import check_writable

_FIELDS: tuple[tuple[str, type, bool], ...] = (
    ("model", str, True),
    ("out", str, True),
    ("name", str, False),
    ("constrained", bool, False),
)


def read_jobs(path: Path) -> list[dict[str, Any]]:
    """The --jobs file: a list of {model, out, name?, constrained?}; errors name file and field."""
    import json

    try:
        jobs = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ToolsftError(f"cannot read the --jobs file ({exc.strerror})", file=path) from exc
    except (ValueError, RecursionError) as exc:
        raise ToolsftError(f"the --jobs file is not JSON ({exc})", file=path) from exc
    if not isinstance(jobs, list) or not jobs:
        raise ToolsftError("must be a non-empty JSON list", file=path, value=jobs)
    for i, job in enumerate(jobs):
        if not isinstance(job, dict):
            raise ToolsftError("a job is a JSON object", file=path, where=f"[{i}]", value=job)
        for key, kind, required in _FIELDS:
            if (required or key in job) and not isinstance(job.get(key), kind):
                raise ToolsftError(
                    f"must be a {'string' if kind is str else 'boolean'}",
                    file=path,
                    where=f"[{i}].{key}",
                    value=job.get(key),
                )
        try:  # checked now: a job's bad folder must not cost the models before it
            check_writable(job["out"], folder=True)
        except ToolsftError as exc:
            raise ToolsftError(str(exc), file=path, where=f"[{i}].out") from exc
    return jobs


def run_jobs(
    console: Console,
    engine_name: str,
    decoding: Any,
    o: dict[str, Any],
    cfg_kw: dict[str, Any],
    jobs: list[dict[str, Any]],
) -> None:
    """Each job (as `read_jobs` returned them) in turn through one engine; a job's results
    as a plain run writes them."""
    from dataclasses import replace

    from toolsft.cli.eval_engine import build_engine
    from toolsft.eval.results import write_run
    from toolsft.eval.runner import EvalConfig, evaluate
    from toolsft.models import model_identity, resolve_model

    engine = None
    try:
        for job in jobs:
            if engine is not None and hasattr(engine, "use_weights"):
                resolved = resolve_model(job["model"], toolsft_home())
                engine.use_weights(resolved)
                ident = model_identity(resolved)
            else:
                if engine is not None:
                    engine.close()
                engine, ident = build_engine(engine_name, job["model"], None, o)
            constrained = bool(job.get("constrained", decoding.constrained))
            cfg = EvalConfig(
                **{k: v for k, v in cfg_kw.items() if k not in ("name", "decoding")},
                name=job.get("name") or Path(job["model"]).name,
                decoding=replace(decoding, constrained=constrained),
                model=ident,
            )
            console.log(f"scoring {cfg.name} ({job['model']})")
            results = evaluate(
                engine, cfg, out=Path(job["out"]), resume=o["resume"], deadline_s=o["deadline"]
            )
            out = write_run(results, job["out"], predictions=False)  # evaluate() wrote them
            console.print(f"wrote [bold]{out}[/]")
    finally:
        if engine is not None:
            engine.close()
