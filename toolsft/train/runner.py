"""Train one curriculum stage: data -> checks -> SFTTrainer -> artifacts. Logs, never prints."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolsft.io import read_json_object
from toolsft.train import artifacts as art
from toolsft.train import distributed as dist
from toolsft.train.callbacks import ProgressCallback, ProgressSink, quiet_progress_bars
from toolsft.train.checkpoints import last_checkpoint
from toolsft.train.config import TrainConfig, dump_yaml
from toolsft.train.curriculum import (
    CurriculumError,
    StagePlan,
    check_parent_base,
    plan_stage,
    read_run,
    weights_dir,
)
from toolsft.train.data import (
    Row,
    cap,
    file_sha256,
    manifest_hash,
    mix_replay,
    read_rows,
    stage_file,
)
from toolsft.train.packing import PackCollator, Packs, pack_stage
from toolsft.train.tokenize import Encoded, encode

logger = logging.getLogger(__name__)


@dataclass
class StageResult:
    stage: int
    dir: Path
    run: dict[str, Any]
    metrics: dict[str, Any] = field(default_factory=dict)
    skipped: bool = False


@dataclass
class Prepared:
    """A stage's encoded data and what data.json / run.json say about it."""

    train: Encoded
    val: Encoded
    record: dict[str, Any]
    train_packs: Packs | None = None
    val_packs: Packs | None = None
    """Shared-prefix packs of `train` / `val` when `share_prefix` is on."""

    def datasets(self) -> tuple[Any, Any]:
        train = self.train_packs or self.train
        val = self.val_packs or self.val
        return train.to_dataset(), val.to_dataset() if self.val.rows else None


def train_stage(
    stage: int,
    data: Path,
    out: Path,
    cfg: TrainConfig,
    home: Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: ProgressSink | None = None,
    callbacks: Sequence[Any] = (),
) -> StageResult:
    """Train stage `stage` on `<data>/stage<N>` into `<out>/stage<N>`.

    Stage N > 1 continues stage N-1's weights from the same `out`. With `resume`, a complete
    stage is skipped and an interrupted one continues from its last checkpoint. `progress`
    receives `Progress` records (the CLI draws them); `callbacks` go to the trainer.
    """
    with quiet_progress_bars(), _threads(cfg.num_threads):
        return _train_stage(
            stage, Path(data), Path(out), cfg, Path(home), resume, overwrite, progress, callbacks
        )


def _train_stage(
    stage: int,
    data: Path,
    out: Path,
    cfg: TrainConfig,
    home: Path,
    resume: bool,
    overwrite: bool,
    progress: ProgressSink | None,
    callbacks: Sequence[Any],
) -> StageResult:
    plan = plan_stage(out, stage)
    skip = _settle_existing(plan, resume, overwrite)
    dist.barrier()  # every rank has read the stage's state before rank 0 changes it
    if skip:
        logger.info("%s is complete; skipping (--resume)", plan.dir)
        return StageResult(stage, plan.dir, read_run(plan.dir), skipped=True)
    # A broken parent is the user's error, told before the model resolves: resolving the
    # default model converts it on first use (~20 s and a progress bar).
    parent_run = read_run(plan.parent_dir) if plan.parent_dir is not None else None
    from toolsft.models import model_identity, resolve_model
    from toolsft.train.device import detect, resolve_auto

    device = detect()
    dist.check_launch(device.gpu)
    base_path = resolve_model(cfg.model, home)
    cfg = resolve_auto(cfg, device, model=base_path)  # the model sizes the memory choices
    from toolsft.train.memory import check_memory

    check_memory(cfg, device, base_path)  # refuses a stage that cannot fit, before loading
    base_id = model_identity(base_path)
    check_parent_base(plan, parent_run, base_id, cfg.method)
    tokenizer = _load_tokenizer(base_path)
    from toolsft.train.templates import choose_template

    template = choose_template(tokenizer, cfg.chat_template)
    prepared = prepare_data(plan, Path(data), cfg, tokenizer, template.train)
    run_checks(tokenizer, prepared, template.train, f"{data}/stage{stage}")
    if dist.is_main():  # rank 0 alone deletes and writes; the others wait for it
        if overwrite and plan.dir.exists():
            # Only now, with the config, model and data checked: a refused run keeps the old one.
            shutil.rmtree(plan.dir)
        plan.dir.mkdir(parents=True, exist_ok=True)
        art.write_text(plan.dir / "config.yaml", dump_yaml(cfg))
    dist.barrier()
    trainer, progress_cb = _make_trainer(
        plan, cfg, device, base_path, tokenizer, prepared, progress, callbacks
    )
    last = last_checkpoint(plan) if resume else None
    if last:
        logger.info("resuming stage %d from %s", stage, last)
    result = trainer.train(resume_from_checkpoint=last)
    metrics = _metrics(trainer, result, progress_cb, prepared, device)
    return _finish(plan, cfg, trainer, tokenizer, template, prepared, metrics, base_id, data)


def train_all(
    data: Path, out: Path, configs: Mapping[int, TrainConfig], home: Path, **kw: Any
) -> list[StageResult]:
    """Stages 1, 2, 3 in order, each continuing the previous one's adapter."""
    return [train_stage(s, data, out, configs[s], home, **kw) for s in sorted(configs)]


def _settle_existing(plan: StagePlan, resume: bool, overwrite: bool) -> bool:
    """True if the stage is complete and --resume says to skip it; refuses what exists
    unless --overwrite (which `_train_stage` clears once the new run has passed its checks)."""
    if overwrite:
        return False
    if plan.complete:
        if resume:
            return True
        raise CurriculumError(
            f"{plan.dir}: stage {plan.stage} is already complete; pass "
            "--overwrite to train it again (or --resume to skip it)"
        )
    if plan.checkpoints.exists() and not resume:
        raise CurriculumError(
            f"{plan.checkpoints}: an interrupted run left checkpoints; pass "
            "--resume to continue it or --overwrite to start over"
        )
    return False


@contextmanager
def _threads(n: int | None) -> Iterator[None]:
    """torch's intra-op threads for this stage only (the process may train or serve more)."""
    if not n:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _load_tokenizer(base_path: Path | str) -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(base_path))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def prepare_data(
    plan: StagePlan, data: Path, cfg: TrainConfig, tokenizer: Any, template: str
) -> Prepared:
    """Current stage rows (capped), replay rows from earlier stages, val rows; all encoded."""
    files = {
        "train": stage_file(data, plan.stage, "train"),
        "val": stage_file(data, plan.stage, "val"),
    }
    current = cap(read_rows(files["train"], plan.stage), cfg.max_train_rows, cfg.seed)
    earlier: list[Row] = []
    for s in plan.replay_stages:
        files[f"replay_stage{s}"] = stage_file(data, s, "train")
        earlier += read_rows(files[f"replay_stage{s}"], s)
    mixed = (
        mix_replay(current, earlier, cfg.replay_share, cfg.seed, by_prompt=cfg.share_prefix)
        if earlier
        else current
    )
    val_rows = cap(read_rows(files["val"], plan.stage, required=False), cfg.max_val_rows, cfg.seed)
    weight = cfg.decision_weight
    train = encode(tokenizer, mixed, template, cfg.max_length, cfg.max_drop_share, weight)
    val = encode(tokenizer, val_rows, template, cfg.max_length, cfg.max_drop_share, weight)
    packs = pack_stage(train, val, cfg.max_length) if cfg.share_prefix else (None, None)
    record = {
        "dir": str(data),
        **manifest_hash(data),
        "files": {
            k: {"path": str(p), "sha256": file_sha256(p)} for k, p in files.items() if p.is_file()
        },
        "train_rows": _by_stage(train.rows),
        "val_rows": len(val.rows),
        "train_tokens": train.tokens,
        **(packs[0].summary() if packs[0] else {}),
        "dropped_too_long": train.dropped_too_long + val.dropped_too_long,
    }
    logger.info(
        "stage %d data: %s train rows by stage, %d val rows, %d tokens",
        plan.stage,
        record["train_rows"],
        len(val.rows),
        train.tokens,
    )
    return Prepared(train, val, record, *packs)


def _by_stage(rows: Sequence[Row]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in rows:
        counts[f"stage{r.stage}"] = counts.get(f"stage{r.stage}", 0) + 1
    return counts


def run_checks(tokenizer: Any, prepared: Prepared, template: str, what: str) -> None:
    from toolsft.train.checks import check_masks, check_parity

    check_masks(tokenizer, prepared.train, what)
    turns = check_parity(tokenizer, prepared.train.rows, template)
    logger.info("%s: mask and template/parser parity checks passed (%d turns)", what, turns)


def _make_trainer(
    plan: StagePlan,
    cfg: TrainConfig,
    device: Any,
    base_path: Path | str,
    tokenizer: Any,
    prepared: Prepared,
    progress: ProgressSink | None,
    callbacks: Sequence[Any],
) -> tuple[Any, ProgressCallback]:
    from transformers import EarlyStoppingCallback, PrinterCallback, set_seed

    from toolsft.train.build import attach_adapter, load_base, sft_config
    from toolsft.train.trainer import ToolSFTTrainer

    has_val = bool(prepared.val.rows)
    # Arguments first: under DeepSpeed ZeRO-3 they make from_pretrained shard while loading.
    args = sft_config(cfg, device, plan.checkpoints, has_val)
    dist.avoid_data_parallel(args)
    parent = weights_dir(plan.parent_dir) if plan.parent_dir else None
    full_parent = cfg.method == "full" and parent is not None
    model = load_base(parent if parent is not None and full_parent else base_path, cfg, device)
    set_seed(cfg.seed)  # the new adapter's initial weights: the same in every run and rank
    model = attach_adapter(model, cfg, None if full_parent else parent)
    progress_cb = ProgressCallback(plan.stage, progress, max_time=cfg.max_time)
    cbs: list[Any] = [progress_cb, *callbacks]
    budget = None
    if cfg.max_time is not None:
        from toolsft.train.timebudget import TimeBudget

        budget = TimeBudget(cfg.max_time, cfg.lr_scheduler, cfg.warmup_ratio)
        cbs.append(budget)
    if args.load_best_model_at_end:
        cbs.append(EarlyStoppingCallback(early_stopping_patience=cfg.early_stopping_patience))
    elif cfg.early_stopping_patience > 0:
        logger.warning("no validation rows: early stopping is off for stage %d", plan.stage)
    train_ds, val_ds = prepared.datasets()
    trainer = ToolSFTTrainer(
        model=model,
        args=args,
        train_dataset=train_ds,
        eval_dataset=val_ds,
        data_collator=PackCollator(tokenizer.pad_token_id) if cfg.share_prefix else None,
        processing_class=tokenizer,
        callbacks=cbs,
        compact_lm_head=bool(cfg.compact_lm_head),
        prefix_grad=cfg.prefix_grad,
        time_budget=budget,
    )
    trainer.remove_callback(PrinterCallback)  # it prints log dicts; our callback logs them
    return trainer, progress_cb


def _metrics(
    trainer: Any, result: Any, progress_cb: ProgressCallback, prepared: Prepared, device: Any
) -> dict[str, Any]:
    from toolsft.train.build import trainable_summary

    metrics = dict(result.metrics)
    evals = [h for h in progress_cb.history if "eval_loss" in h]
    if trainer.args.load_best_model_at_end and trainer.state.best_metric is not None:
        metrics["eval_loss"] = trainer.state.best_metric  # the weights we keep
    elif evals and evals[-1]["step"] == trainer.state.global_step:
        metrics["eval_loss"] = evals[-1]["eval_loss"]
    elif prepared.val.rows:  # no evaluation of the final weights yet
        metrics.update(trainer.evaluate())
    metrics.update(trainable_summary(trainer.model))
    metrics["global_step"] = trainer.state.global_step
    metrics["world_size"] = trainer.accelerator.num_processes
    metrics["tokens_seen"] = int(trainer.state.num_input_tokens_seen or 0)
    metrics["tokens_per_s"] = round(progress_cb.tokens_per_s, 2)
    metrics["peak_memory_gb"] = round(peak_memory_gb(device), 3)
    metrics["best_checkpoint"] = trainer.state.best_model_checkpoint
    metrics["log_history"] = progress_cb.history
    return metrics


def peak_memory_gb(device: Any) -> float:
    """Peak process RSS on CPU; peak allocated memory on GPU."""
    if getattr(device, "gpu", False):
        import torch

        return torch.cuda.max_memory_allocated() / 2**30
    return peak_rss_bytes() / 2**30


def peak_rss_bytes() -> int:
    """This process's own peak resident memory. Linux's VmHWM, not ru_maxrss: Linux carries
    ru_maxrss over from the parent through fork and exec, so a trainer started by a 1.6 GB
    process (a test runner, a notebook) reported 1.6 GB whatever it used itself."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB elsewhere


def _finish(
    plan: StagePlan,
    cfg: TrainConfig,
    trainer: Any,
    tokenizer: Any,
    template: Any,
    prepared: Prepared,
    metrics: dict[str, Any],
    base_id: dict[str, Any],
    data: Path,
) -> StageResult:
    art.save_weights(trainer, tokenizer, template.serve, plan.dir)
    main = trainer.is_world_process_zero()
    run: dict[str, Any] = {}
    if main:
        ids = {
            "train_ids": [f"stage{r.stage}:{r.id}" for r in prepared.train.rows],
            "val_ids": [r.id for r in prepared.val.rows],
        }
        run = art.write_records(
            plan, cfg, trainer, template, prepared.record, ids, metrics, base_id
        )
        if not cfg.keep_checkpoints:
            shutil.rmtree(plan.checkpoints, ignore_errors=True)
    dist.barrier()  # the other ranks return what rank 0 wrote
    if not main:
        run, metrics = read_run(plan.dir), read_json_object(plan.dir / "metrics.json")
    logger.info("stage %d complete: %s", plan.stage, plan.dir)
    return StageResult(plan.stage, plan.dir, run, metrics)
