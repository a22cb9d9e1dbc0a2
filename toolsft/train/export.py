"""`toolsft export`: a trained stage as a servable folder.

With `merge` the LoRA adapter is folded into its base model and saved as plain safetensors
with the tokenizer and serving template: transformers and vLLM load it as any model, and it is
the only way to serve adapters that carry full modules (`modules_to_save` with lm_head or
embeddings, which vLLM rejects). Without `merge` the adapter folder is copied as is.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

from toolsft.train.artifacts import share_files, write_json
from toolsft.train.curriculum import CurriculumError, read_run, stage_dir

logger = logging.getLogger(__name__)


MARKER = "toolsft-export.json"


def export_merged(
    run: Path, stage: int, out: Path, home: Path, merge: bool = True, overwrite: bool = False
) -> Path:
    """Write stage `stage` of `run` to `out` (merged model, or the adapter); return `out`.

    `overwrite` replaces an earlier export in `out` (a folder holding toolsft-export.json),
    only once the new one is complete; any other non-empty folder is refused.
    """
    from toolsft.train.callbacks import quiet_progress_bars

    with quiet_progress_bars():
        return _export(Path(run), stage, Path(out), Path(home), merge, overwrite)


def _check_out(out: Path, overwrite: bool) -> None:
    if not out.exists() or not any(out.iterdir()):
        return
    if not overwrite:
        raise CurriculumError(
            f"--out {out}: exists and is not empty; choose a new folder (or --overwrite)"
        )
    if not (out / MARKER).is_file():
        raise CurriculumError(
            f"--out {out}: not an earlier export (no {MARKER}); --overwrite only replaces "
            "those, so choose a new folder"
        )


def _export(run: Path, stage: int, out: Path, home: Path, merge: bool, overwrite: bool) -> Path:
    sdir = stage_dir(run, stage)
    record = read_run(sdir)
    _check_out(out, overwrite)
    if not merge and record.get("serve_requires_merge"):
        raise CurriculumError(
            f"{sdir / 'run.json'}: this adapter trains full modules (modules_to_save), which "
            "vLLM cannot load; export it with --merge"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        if record.get("method") == "full":
            _copy_files(sdir, tmp)
        elif merge:
            _merge(sdir, record, tmp, home)
        else:
            _copy_files(sdir, tmp)
        write_json(
            tmp / MARKER,
            {
                "run": str(sdir),
                "stage": stage,
                "merged": merge,
                "run_sha256": record.get("run_sha256"),
                "base_model": record.get("base_model"),
            },
        )
        share_files(tmp)
        if out.exists():
            # the old export moves aside only now that the new one is complete
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=out.parent))
            out.rename(old / out.name)
            shutil.rmtree(old, ignore_errors=True)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    logger.info("exported stage %d of %s to %s", stage, run, out)
    return out


def _copy_files(src: Path, dst: Path) -> None:
    for path in src.iterdir():
        if path.is_file() and path.name not in ("run.json", "data.json"):
            shutil.copy2(path, dst / path.name)


def _base_path(record: dict[str, Any], home: Path) -> Path | str:
    from toolsft.models import model_identity, resolve_model

    base = record.get("base_model") or {}
    path = base.get("path")
    resolved = Path(path) if path and Path(path).is_dir() else resolve_model(base["name"], home)
    now = model_identity(resolved)
    if base.get("sha256") and now.get("sha256") != base["sha256"]:
        raise CurriculumError(
            f"base model {base.get('name')!r} at {resolved} has sha256 "
            f"{str(now.get('sha256'))[:12]}, but the adapter was trained on "
            f"{base['sha256'][:12]}; merging would produce a different model"
        )
    return resolved


def _merge(sdir: Path, record: dict[str, Any], out: Path, home: Path) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base_path = _base_path(record, home)
    model = AutoModelForCausalLM.from_pretrained(str(base_path), dtype=torch.float32)
    model = PeftModel.from_pretrained(model, str(sdir)).merge_and_unload()
    model.save_pretrained(out, safe_serialization=True)
    AutoTokenizer.from_pretrained(str(sdir)).save_pretrained(out)
