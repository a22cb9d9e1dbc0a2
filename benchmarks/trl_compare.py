"""Training speed: toolsft's training path against TRL's own `SFTTrainer`, same data and device.

    .venv/bin/python benchmarks/trl_compare.py                       # CPU: tiny-random, < 2 min
    python benchmarks/trl_compare.py --model smollm2-135m --steps 30 --warmup 5 --rows 2000  # GPU

Both runs train the same rows of one `toolsft gen` stage (generated here unless --data names a
dataset) with the same LoRA, learning rate, max_length, steps and rows per optimizer step.

- toolsft: the config (`--config`, default the `gpu` demo budget) resolved for this device with
  `resolve_auto`, then `toolsft.train.runner`'s own data preparation and trainer.
- TRL: what a TRL user writes: `load_dataset("json")` on the same stage file, the same chat
  template on the tokenizer, `SFTConfig(assistant_only_loss=True, packing=...,
  padding_free=...)` and the model by path. Everything else keeps TRL's defaults (gradient
  checkpointing on, no Liger) unless --trl-no-checkpointing / --trl-liger. TRL tokenizes the
  rows itself; the run checks that it gets the same tokens as toolsft.

Each run is its own process (peak memory is its own). Timing starts at the end of optimizer step
`--warmup` and stops at the end of the last step (on CUDA after a synchronize); a collator
wrapper counts, per micro-batch, on the host:
  forward tokens  tokens in the forward pass (no padding; a shared prefix once per pack)
  data tokens     the rows' own tokens (a shared prefix counted once per row): the same work
                  for both trainers, so "data tokens/s" compares them on the same data
MFU (CUDA): model FLOPs / s / the GPU's dense bf16 peak. FLOPs per step, LoRA on a frozen base:
4 x (linear parameters) per forward token (forward + input gradient; 6 x for --method full),
4 x vocab x hidden per labelled token (the LM head the loss needs), and 12 x attention width x
layers per attended (query, key) pair (causal, within each row or pack segment).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from isolated import emit, run_arm  # noqa: E402 (this folder is on the path of a script)

PEAK_BF16 = {"H200": 989e12, "H100": 989e12, "H800": 989e12, "A100": 312e12, "A800": 312e12,
             "L40S": 362e12, "L4": 121e12, "A10": 125e12}  # fmt: skip
"""Dense bf16 tensor-core peaks (FLOP/s) by name fragment; --peak-tflops for other GPUs."""


# --- data ---------------------------------------------------------------------------------------


def bench_data(args: argparse.Namespace, tmp: Path) -> Path:
    """A dataset whose stage-`stage` train file holds exactly the benchmark's rows."""
    src = Path(args.data) if args.data else tmp / "gen"
    if not args.data:
        from click.testing import CliRunner

        from toolsft.cli.main import cli

        res = CliRunner().invoke(cli, [
            "gen", "--suite", args.suite, "--out", str(src), "--seed", "0",
            "--per-stage", str(args.rows), "--stages", str(args.stage), "--group", str(args.group),
            "--show-all", "--suite-order", "--max-tools", "0",
        ])  # fmt: skip
        if res.exit_code:
            sys.exit(f"toolsft gen failed: {res.output}")
    train = src / f"stage{args.stage}" / "train.jsonl"
    lines = [x for x in train.read_text(encoding="utf-8").splitlines() if x.strip()]
    lines = fitting(args, train, lines[: args.rows])
    if not lines:
        sys.exit(f"{train}: no row fits max_length")
    out = tmp / "data"
    (out / f"stage{args.stage}").mkdir(parents=True, exist_ok=True)
    text = "\n".join(lines) + "\n"
    (out / f"stage{args.stage}" / "train.jsonl").write_text(text, encoding="utf-8")
    return out


def fitting(args: argparse.Namespace, train: Path, lines: list[str]) -> list[str]:
    """The rows no longer than max_length: toolsft drops longer rows and TRL would truncate
    them, so both get only these."""
    from toolsft.models import resolve_model
    from toolsft.train.config import load_config
    from toolsft.train.data import read_rows
    from toolsft.train.runner import _load_tokenizer
    from toolsft.train.templates import choose_template
    from toolsft.train.tokenize import tokenize_rows

    cfg = load_config(Path(args.config) if args.config else None, args.stage, {})
    limit = args.max_length or cfg.max_length
    tokenizer = _load_tokenizer(resolve_model(args.model, Path(args.home)))
    template = choose_template(tokenizer, cfg.chat_template).train
    rows = read_rows(train, args.stage)[: len(lines)]
    sizes = [len(ids) for ids, _, _ in tokenize_rows(tokenizer, rows, template)]
    return [x for x, n in zip(lines, sizes, strict=True) if n <= limit]


# --- counting and timing ------------------------------------------------------------------------


def count_feature(f: dict[str, Any]) -> dict[str, int]:
    """Forward tokens, data tokens, rows, labelled tokens and attended pairs of one feature:
    a row, a TRL pack (`seq_lengths`) or a toolsft shared-prefix pack (`segments`)."""
    ids = list(f["input_ids"])
    n = len(ids)
    labels = f.get("labels")
    labelled = n if labels is None else sum(1 for x in labels if x != -100)
    if "assistant_masks" in f and labels is None:
        labelled = sum(f["assistant_masks"])
    if "segments" in f:
        seg = list(f["segments"])
        p = seg.count(0)
        suffixes = [seg.count(k) for k in range(1, max(seg, default=0) + 1)]
        rows = len(suffixes) or 1
        pairs = p * (p + 1) // 2 + sum(t * p + t * (t + 1) // 2 for t in suffixes)
        return {"fwd": n, "data": n + (rows - 1) * p, "rows": rows, "labelled": labelled,
                "pairs": pairs}  # fmt: skip
    lengths = list(f.get("seq_lengths") or [n])
    pairs = sum(t * (t + 1) // 2 for t in lengths)
    return {"fwd": n, "data": n, "rows": len(lengths), "labelled": labelled, "pairs": pairs}


class Counting:
    """Wraps a data collator; keeps each micro-batch's counts in the order batches are made."""

    def __init__(self, collator: Any, batches: list[dict[str, int]]) -> None:
        self.collator, self.batches = collator, batches

    def __call__(self, features: list[dict[str, Any]]) -> Any:
        total: dict[str, int] = {}
        for f in features:
            for k, v in count_feature(f).items():
                total[k] = total.get(k, 0) + v
        self.batches.append(total)
        return self.collator(features)


def meter(warmup: int) -> Any:
    from transformers import TrainerCallback

    class Meter(TrainerCallback):
        """Wall time from the end of step `warmup` to the end of the last step."""

        def __init__(self) -> None:
            self.batches: list[dict[str, int]] = []
            self.t0 = self.t1 = 0.0
            self.steps = 0

        def _now(self) -> float:
            import torch

            if torch.cuda.is_available():
                torch.cuda.synchronize()  # only here: the steps in between run without a sync
            return time.perf_counter()

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if state.global_step == warmup:
                self.t0 = self._now()
            elif state.global_step == state.max_steps:
                self.t1 = self._now()
                self.steps = state.global_step - warmup

        def window(self, accum: int) -> dict[str, float]:
            """Sums over the timed steps' micro-batches, and the seconds they took."""
            timed = self.batches[warmup * accum : (warmup + self.steps) * accum]
            out = {k: float(sum(b[k] for b in timed)) for k in timed[0]} if timed else {}
            out["seconds"] = self.t1 - self.t0
            return out

    return Meter()


def model_flops(model: Any, w: dict[str, float], full: bool) -> float:
    """Model FLOPs of the timed window (see the module docstring)."""
    from toolsft.train.memory import shape_from_config

    s = shape_from_config(model.config.to_dict())
    if s is None:
        return 0.0
    linear = s.layers * sum(a * b for a, b in s.linears().values())
    per_param = 6 if full else 4
    attn = 12 * s.heads * s.head_dim * s.layers * w["pairs"]
    return per_param * linear * w["fwd"] + 4 * s.vocab * s.hidden * w["labelled"] + attn


def peak_flops(args: argparse.Namespace) -> float | None:
    import torch

    if args.peak_tflops:
        return args.peak_tflops * 1e12
    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name(0)
    return next((v for k, v in PEAK_BF16.items() if k in name), None)


# --- the two runs -------------------------------------------------------------------------------


def toolsft_config(args: argparse.Namespace, device: Any, base: Path) -> Any:
    from toolsft.train.config import load_config
    from toolsft.train.device import resolve_auto

    overrides = {
        "model": args.model, "max_steps": args.steps, "save_steps": 10**6, "max_val_rows": 0,
        "replay_share": 0.0, "decision_weight": 1.0, "early_stopping_patience": 0,
        "max_train_rows": None, "max_drop_share": 1.0, "logging_steps": args.steps,
    }  # fmt: skip
    for name in ("max_length", "batch_size"):
        if getattr(args, name):
            overrides[name] = getattr(args, name)
    cfg = load_config(Path(args.config) if args.config else None, args.stage, overrides)
    return resolve_auto(cfg, device, model=base)


def run_toolsft(args: argparse.Namespace, tmp: Path, data: Path) -> dict[str, Any]:
    from toolsft.models import resolve_model
    from toolsft.train.curriculum import StagePlan
    from toolsft.train.device import detect
    from toolsft.train.runner import _load_tokenizer, _make_trainer, prepare_data
    from toolsft.train.templates import choose_template

    device = detect()
    base = resolve_model(args.model, Path(args.home))
    cfg = toolsft_config(args, device, Path(base))
    tokenizer = _load_tokenizer(base)
    template = choose_template(tokenizer, cfg.chat_template).train
    plan = StagePlan(args.stage, tmp / "toolsft", None, ())
    prepared = prepare_data(plan, data, cfg, tokenizer, template)
    m = meter(args.warmup)
    trainer, _ = _make_trainer(plan, cfg, device, base, tokenizer, prepared, None, [m])
    trainer.data_collator = Counting(trainer.data_collator, m.batches)
    trainer.train()
    settings = {k: getattr(cfg, k) for k in (
        "batch_size", "grad_accum", "share_prefix", "gradient_checkpointing", "optim",
        "attn_implementation", "bf16", "use_liger_kernel", "compact_lm_head", "max_length",
    )}  # fmt: skip
    return report("toolsft", args, trainer, m, cfg.grad_accum, prepared.train.tokens, settings)


def trl_batch(args: argparse.Namespace, cfg: Any, lengths: list[int]) -> int:
    """Micro-batch (rows, or TRL's packs) that gives the rows per step toolsft trained."""
    rows = args.rows_per_step / cfg.grad_accum
    if args.trl != "packing":
        return max(1, round(rows))
    from trl import pack_dataset

    from datasets import Dataset

    packs = pack_dataset(Dataset.from_dict({"input_ids": [[0] * n for n in lengths]}),
                         cfg.max_length, "bfd")  # fmt: skip
    return max(1, round(rows * len(packs) / len(lengths)))


def run_trl(args: argparse.Namespace, tmp: Path, data: Path) -> dict[str, Any]:
    import torch
    from transformers import AutoTokenizer, PrinterCallback
    from trl import SFTConfig, SFTTrainer

    from datasets import load_dataset
    from toolsft.models import resolve_model
    from toolsft.train.build import lora_config
    from toolsft.train.device import detect
    from toolsft.train.templates import choose_template

    device = detect()
    base = resolve_model(args.model, Path(args.home))
    cfg = toolsft_config(args, device, Path(base))  # the same LoRA, rates, lengths and steps
    tokenizer = AutoTokenizer.from_pretrained(str(base))
    tokenizer.chat_template = choose_template(tokenizer, cfg.chat_template).train
    dataset = load_dataset("json", data_files=str(data / f"stage{args.stage}" / "train.jsonl"))
    train = dataset["train"]
    lengths = [  # each row's tokens, for the batch size only
        len(tokenizer.apply_chat_template(r["messages"], tools=json.loads(r["tools"]))["input_ids"])
        for r in train
    ]
    packing = args.trl == "packing"
    sft = SFTConfig(
        output_dir=str(tmp / "trl"),
        max_steps=args.steps,
        per_device_train_batch_size=trl_batch(args, cfg, lengths),
        gradient_accumulation_steps=cfg.grad_accum,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.lr_scheduler,
        warmup_steps=cfg.warmup_ratio,
        max_length=cfg.max_length if args.trl != "padding_free" else None,
        assistant_only_loss=True,
        packing=packing,
        padding_free=args.trl == "padding_free",
        bf16=bool(cfg.bf16),
        gradient_checkpointing=not args.trl_no_checkpointing,
        use_liger_kernel=args.trl_liger,
        model_init_kwargs={
            "dtype": torch.bfloat16 if cfg.bf16 else torch.float32,
            "attn_implementation": "flash_attention_2" if device.flash_attn else "sdpa",
        },
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        logging_steps=args.steps,
        use_cpu=not device.gpu,
        seed=cfg.seed,
    )
    m = meter(args.warmup)
    trainer = SFTTrainer(
        model=str(base),
        args=sft,
        train_dataset=train,
        processing_class=tokenizer,
        peft_config=lora_config(cfg),
        callbacks=[m],
    )
    trainer.remove_callback(PrinterCallback)
    tokens = sum(len(x) for x in trainer.train_dataset["input_ids"])
    trainer.data_collator = Counting(trainer.data_collator, m.batches)
    trainer.train()
    settings = {
        "mode": args.trl, "batch_size": sft.per_device_train_batch_size,
        "grad_accum": sft.gradient_accumulation_steps,
        "gradient_checkpointing": sft.gradient_checkpointing, "optim": sft.optim,
        "attn_implementation": sft.model_init_kwargs["attn_implementation"], "bf16": sft.bf16,
        "use_liger_kernel": sft.use_liger_kernel, "max_length": sft.max_length,
    }  # fmt: skip
    return report("trl", args, trainer, m, cfg.grad_accum, tokens, settings)


def report(
    which: str, args: argparse.Namespace, trainer: Any, m: Any, accum: int, tokens: int,
    settings: dict[str, Any],
) -> dict[str, Any]:  # fmt: skip
    import torch

    from toolsft.train.runner import peak_memory_gb

    w = m.window(accum)
    s = max(w["seconds"], 1e-9)
    out: dict[str, Any] = {
        "run": which,
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "timed_steps": m.steps,
        "step_s": round(s / max(m.steps, 1), 4),
        "rows_per_step": round(w.get("rows", 0) / max(m.steps, 1), 2),
        "data_tokens_per_s": round(w.get("data", 0) / s, 1),
        "forward_tokens_per_s": round(w.get("fwd", 0) / s, 1),
        "dataset_tokens": tokens,
        "peak_memory_gb": round(peak_memory_gb(SimpleNamespace(gpu=torch.cuda.is_available())), 2),
        "settings": settings,
    }
    peak = peak_flops(args)
    full = not hasattr(trainer.model, "peft_config")  # no adapter: every weight trains
    if peak and w.get("fwd"):
        out["mfu"] = round(model_flops(trainer.model, w, full) / s / peak, 4)
    return out


# --- driver -------------------------------------------------------------------------------------


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--model", default="tiny-random", help="tiny-random (default), smollm2-135m, ..."
    )
    p.add_argument("--config", default=str(ROOT / "configs" / "demo" / "gpu.yaml"),
                   help="toolsft config or demo budget (its train section) ['' for the defaults]")  # fmt: skip
    p.add_argument("--data", help="a `toolsft gen` dataset (default: generated here)")
    p.add_argument("--suite", default="commerce", help="suite to generate from [commerce]")
    p.add_argument("--stage", type=int, default=2, choices=[1, 2, 3])
    p.add_argument("--group", type=int, default=8, help="gen --group: rows sharing a prompt [8]")
    p.add_argument("--steps", type=int, default=6, help="optimizer steps per run [6]")
    p.add_argument("--warmup", type=int, default=2, help="steps left out of the timing [2]")
    p.add_argument("--rows", type=int, default=400, help="rows of data (cycled if short) [400]")
    p.add_argument("--max-length", type=int, help="override the config's [CPU: 1024]")
    p.add_argument("--batch-size", type=int, help="override the config's [CPU: 1]")
    p.add_argument("--trl", choices=["packing", "padding_free", "padded"], default="packing",
                   help="TRL's batching: packing (bfd, padding-free), padding_free, padded")  # fmt: skip
    p.add_argument("--trl-no-checkpointing", action="store_true",
                   help="turn TRL's default gradient checkpointing off")  # fmt: skip
    p.add_argument("--trl-liger", action="store_true", help="use_liger_kernel for TRL")
    p.add_argument("--peak-tflops", type=float, help="the GPU's dense bf16 peak, for MFU")
    p.add_argument("--home", default=os.environ.get("TOOLSFT_HOME", "~/.cache/toolsft"))
    p.add_argument("--only", choices=["toolsft", "trl"], help=argparse.SUPPRESS)
    p.add_argument("--data-dir", help=argparse.SUPPRESS)
    p.add_argument("--rows-per-step", type=float, default=16.0, help=argparse.SUPPRESS)
    args = p.parse_args()
    args.home = str(Path(args.home).expanduser())
    import torch

    if not torch.cuda.is_available():  # TRL scores every position on CPU: keep the run short
        args.max_length = args.max_length or 1024
        args.batch_size = args.batch_size or 1
    if args.warmup >= args.steps:
        p.error("--warmup must be below --steps")
    if args.only:
        import logging

        logging.basicConfig(level=logging.WARNING)
        tmp = Path(tempfile.mkdtemp(prefix=f"trl-compare-{args.only}-"))
        run = run_toolsft if args.only == "toolsft" else run_trl
        try:
            emit(run(args, tmp, Path(args.data_dir)))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return
    compare(args)


def compare(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="trl-compare-"))
    try:
        data = bench_data(args, tmp)
        results: dict[str, dict[str, Any]] = {}
        for which in ("toolsft", "trl"):  # TRL gets the rows per step toolsft trained
            extra = ["--rows-per-step", str(results["toolsft"]["rows_per_step"])] if results else []
            argv = [*sys.argv[1:], "--only", which, "--data-dir", str(data), *extra]
            results[which] = run_arm(__file__, argv, which)
            print(json.dumps(results[which]))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    summary(results)


def summary(r: dict[str, dict[str, Any]]) -> None:
    a, b = r["toolsft"], r["trl"]
    print(f"{'':8} {'step s':>8} {'rows/step':>9} {'data tok/s':>11} {'fwd tok/s':>10} "
          f"{'MFU':>6} {'peak GB':>8}")  # fmt: skip
    for x in (a, b):
        mfu = f"{x['mfu']:.1%}" if "mfu" in x else "-"
        print(f"{x['run']:8} {x['step_s']:8.3f} {x['rows_per_step']:9.1f} "
              f"{x['data_tokens_per_s']:11.0f} {x['forward_tokens_per_s']:10.0f} {mfu:>6} "
              f"{x['peak_memory_gb']:8.2f}")  # fmt: skip
    same = a["dataset_tokens"] == b["dataset_tokens"]
    print(f"same data: {same} ({a['dataset_tokens']} vs {b['dataset_tokens']} row tokens)")
    ratio = a["data_tokens_per_s"] / max(b["data_tokens_per_s"], 1e-9)
    print(f"ratio toolsft / TRL: {ratio:.2f}x data tokens/s on {a['device']}")


if __name__ == "__main__":
    main()
