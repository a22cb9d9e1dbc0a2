"""What a finished stage leaves behind, written so that a crash leaves no half stage.

`runs/<name>/stage<N>/` is itself the adapter folder (`adapter_config.json`,
`adapter_model.safetensors`; a full model folder after full fine-tuning) with the tokenizer and
the serving template, plus `config.yaml` (the exact resolved config), `trainer_args.json`,
`metrics.json`, `data.json` (row ids by source, replay included) and `run.json` (lineage),
written last: its presence marks the stage complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import toolsft
from toolsft.io import atomic_write, sha256_text
from toolsft.train.config import TrainConfig
from toolsft.train.curriculum import RUN_JSON, StagePlan, read_run, weights_dir


def share_files(folder: Path) -> None:
    """Make a published folder readable like any saved model (mkstemp/mkdtemp make it private),
    still honouring the umask."""
    mask = os.umask(0)
    os.umask(mask)
    folder.chmod(0o755 & ~mask)
    for path in folder.iterdir():
        if path.is_file():
            path.chmod(0o644 & ~mask)


def write_json(path: Path, obj: Any) -> None:
    """Atomic: write a temp file beside the target, then rename over it."""
    atomic_write(path, json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n")


def write_text(path: Path, text: str) -> None:
    atomic_write(path, text)


def save_weights(trainer: Any, tokenizer: Any, serve_template: str, target: Path) -> None:
    """Save the adapter (or full model) plus tokenizer into `target`.

    Written to a temp folder first, then each file is renamed into place, so a crash leaves
    either old files or new ones, never a half-written file; run.json (written after) is what
    marks the stage complete. Every rank calls this (FSDP/ZeRO-3 gather weights collectively);
    only the main process writes.
    """
    main = trainer.is_world_process_zero()
    tmp = target / ".weights.tmp"
    if main:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    trainer.accelerator.wait_for_everyone()
    trainer.save_model(str(tmp))
    if main:
        try:
            tokenizer.chat_template = serve_template
            tokenizer.save_pretrained(str(tmp))
            (tmp / "training_args.bin").unlink(missing_ok=True)  # trainer_args.json has it
            for path in tmp.iterdir():
                if path.is_file():
                    os.replace(path, target / path.name)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    trainer.accelerator.wait_for_everyone()


text_sha256 = sha256_text


def weights_sha256(folder: Path) -> str:
    """A stage's weights hash: the same function as a base model's and an eval's adapter
    (`toolsft.models.weights_sha256`), so run.json and results.json name an adapter alike."""
    from toolsft.models import weights_sha256 as model_weights_sha256

    return model_weights_sha256(folder)


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"toolsft": toolsft.__version__, "python": platform.python_version()}
    for name in ("torch", "transformers", "peft", "trl", "accelerate"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "missing"
    return out


def parent_lineage(plan: StagePlan) -> dict[str, Any] | None:
    if plan.parent_dir is None:
        return None
    run = read_run(plan.parent_dir)
    wdir = weights_dir(plan.parent_dir)
    return {
        "stage": run.get("stage"),
        "dir": str(plan.parent_dir),
        "weights": str(wdir),
        "weights_sha256": weights_sha256(wdir),
        "run_sha256": run.get("run_sha256"),
    }


def finish_stage(plan: StagePlan, record: dict[str, Any]) -> dict[str, Any]:
    """Write run.json last; it carries its own content hash for children to cite."""
    record = {
        "toolsft_version": toolsft.__version__,
        "stage": plan.stage,
        "status": "complete",
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "versions": versions(),
        **record,
    }
    body = json.dumps(record, sort_keys=True, default=str).encode()
    record["run_sha256"] = hashlib.sha256(body).hexdigest()
    write_json(plan.dir / RUN_JSON, record)
    return record


RUN_METRICS = ("global_step", "train_loss", "eval_loss", "tokens_per_s", "peak_memory_gb")


def write_records(
    plan: StagePlan,
    cfg: TrainConfig,
    trainer: Any,
    template: Any,
    record: dict[str, Any],
    ids: dict[str, list[str]],
    metrics: dict[str, Any],
    base_id: dict[str, Any],
) -> dict[str, Any]:
    """trainer_args.json, metrics.json, data.json (`record` and the row `ids`), then run.json:
    the stage is complete. Rank 0 only."""
    from toolsft.train.build import serve_requires_merge

    write_json(plan.dir / "trainer_args.json", trainer.args.to_dict())
    write_json(plan.dir / "metrics.json", metrics)
    write_json(plan.dir / "data.json", {**record, **ids})
    return finish_stage(
        plan,
        {
            "base_model": base_id,
            "method": cfg.method,
            "weights": "adapter" if cfg.method != "full" else "full model",
            "weights_sha256": weights_sha256(plan.dir),
            "parent": parent_lineage(plan),
            "data": {k: v for k, v in record.items() if k != "dropped_too_long"},
            "template": {"origin": template.origin, "sha256": text_sha256(template.serve)},
            "serve_requires_merge": serve_requires_merge(cfg),
            "config": "config.yaml",
            "metrics": {k: metrics.get(k) for k in RUN_METRICS},
        },
    )
