"""Resolve the config's "auto" (None) values for the device at hand.

CPU choices come from measurements on a 2-core Xeon (see benchmarks/train_throughput.py):
padded micro-batches of one or two rows are as fast per token as bigger ones there (the CPU is
compute bound already) and keep peak memory far below 8 GB for SmolLM2-135M at 1k tokens,
where batch 8 x 543 tokens took 12.8 GB. Packing is slower on CPU (no varlen attention kernel).
"""

from __future__ import annotations

import importlib.util
import logging
import math
from dataclasses import dataclass

from toolsft.hardware import cpu_has_bf16
from toolsft.train.config import ConfigError, TrainConfig

logger = logging.getLogger(__name__)

ROWS_PER_STEP = 16
"""Target rows per optimizer step when batch size and accumulation are auto."""
CPU_TOKENS_PER_MICRO_BATCH = 2048
GPU_TOKENS_PER_MICRO_BATCH = 16384


@dataclass(frozen=True)
class Device:
    kind: str  # "cuda" or "cpu" (mps counts as cpu here: no bf16 autocast guarantees)
    bf16_ok: bool
    flash_attn: bool
    liger: bool
    name: str

    @property
    def gpu(self) -> bool:
        return self.kind == "cuda"


def detect() -> Device:
    import torch

    if torch.cuda.is_available():
        return Device(
            kind="cuda",
            bf16_ok=torch.cuda.is_bf16_supported(),
            flash_attn=importlib.util.find_spec("flash_attn") is not None,
            liger=importlib.util.find_spec("liger_kernel") is not None,
            name=torch.cuda.get_device_name(0),
        )
    return Device("cpu", bf16_ok=cpu_has_bf16(), flash_attn=False, liger=False, name="cpu")


def resolve_auto(cfg: TrainConfig, device: Device) -> TrainConfig:
    """Fill every None with the device's choice; refuse options the device cannot run."""
    if cfg.method == "qlora" and not device.gpu:
        raise ConfigError(
            "QLoRA needs a CUDA GPU (bitsandbytes 4-bit); use method lora on CPU "
            "(SmolLM2-135M trains fine in fp32/bf16)",
            where="method",
            value=cfg.method,
        )
    if cfg.method == "qlora" and importlib.util.find_spec("bitsandbytes") is None:
        raise ConfigError(
            "QLoRA needs bitsandbytes (pip install bitsandbytes)",
            where="method",
            value=cfg.method,
        )
    if cfg.packing and not device.flash_attn:
        logger.warning("packing = true without FlashAttention: falls back to padded batches")
    tokens = GPU_TOKENS_PER_MICRO_BATCH if device.gpu else CPU_TOKENS_PER_MICRO_BATCH
    batch = cfg.batch_size or max(1, min(ROWS_PER_STEP, tokens // cfg.max_length))
    accum = cfg.grad_accum or max(1, math.ceil(ROWS_PER_STEP / batch))
    attn = cfg.attn_implementation or ("flash_attention_2" if device.flash_attn else "sdpa")
    if cfg.share_prefix:
        # Shared-prefix packs need an arbitrary 4-D mask: FlashAttention cannot take one.
        if cfg.attn_implementation == "flash_attention_2":
            raise ConfigError(
                "must be sdpa or eager with share_prefix (FlashAttention takes no 4-D mask)",
                where="attn_implementation",
                value=cfg.attn_implementation,
            )
        if cfg.packing:
            raise ConfigError(
                "must be false with share_prefix (they exclude each other)",
                where="packing",
                value=cfg.packing,
            )
        attn = "sdpa" if attn == "flash_attention_2" else attn
    return cfg.replace(
        batch_size=batch,
        grad_accum=accum,
        bf16=device.bf16_ok if cfg.bf16 is None else cfg.bf16,
        gradient_checkpointing=device.gpu
        if cfg.gradient_checkpointing is None
        else cfg.gradient_checkpointing,
        packing=(device.gpu and device.flash_attn and not cfg.share_prefix)
        if cfg.packing is None
        else bool(cfg.packing and device.flash_attn),
        attn_implementation=attn,
        use_liger_kernel=(device.gpu and device.liger)
        if cfg.use_liger_kernel is None
        else cfg.use_liger_kernel,
        max_val_rows=(64 if device.gpu else 16) if cfg.max_val_rows is None else cfg.max_val_rows,
        compact_lm_head=not device.gpu if cfg.compact_lm_head is None else cfg.compact_lm_head,
        logging_steps=cfg.logging_steps or (10 if device.gpu else 1),
    )
