"""Resolve the config's "auto" (None) values for the device at hand, and refuse the
combinations a device cannot run or that would train on wrong logits.

On CPU, micro-batches of one or two rows are as fast per token as bigger ones (the CPU is
compute bound already) and keep peak memory low; packing is off there (no varlen kernel).
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
    _refuse_method(cfg, device)
    _refuse_precision(cfg, device)
    if cfg.packing and not device.flash_attn:
        logger.warning("packing = true without FlashAttention: falls back to padded batches")
    tokens = GPU_TOKENS_PER_MICRO_BATCH if device.gpu else CPU_TOKENS_PER_MICRO_BATCH
    batch = cfg.batch_size or max(1, min(ROWS_PER_STEP, tokens // cfg.max_length))
    accum = cfg.grad_accum or max(1, math.ceil(ROWS_PER_STEP / batch))
    attn = cfg.attn_implementation or ("flash_attention_2" if device.flash_attn else "sdpa")
    if cfg.share_prefix and cfg.attn_implementation is None:
        attn = "sdpa"  # the only kernel that applies the packs' boolean 4-D mask
    packing = (
        (device.gpu and "flash" in attn and not cfg.share_prefix)
        if cfg.packing is None
        else bool(cfg.packing and device.flash_attn)
    )
    _refuse_attention(cfg, attn, packing)
    checkpointing = cfg.gradient_checkpointing
    if checkpointing is None:  # off with a detached prefix, which needs the layers' cache
        checkpointing = device.gpu and cfg.prefix_grad
    elif checkpointing and not cfg.prefix_grad:
        raise ConfigError(
            "must be false with prefix_grad false (checkpointed layers drop the cache that "
            "hands the detached prefix to the rows)",
            where="gradient_checkpointing",
            value=cfg.gradient_checkpointing,
        )
    return cfg.replace(
        batch_size=batch,
        grad_accum=accum,
        bf16=device.bf16_ok if cfg.bf16 is None else cfg.bf16,
        gradient_checkpointing=checkpointing,
        packing=packing,
        attn_implementation=attn,
        use_liger_kernel=(device.gpu and device.liger)
        if cfg.use_liger_kernel is None
        else cfg.use_liger_kernel,
        max_val_rows=(64 if device.gpu else 16) if cfg.max_val_rows is None else cfg.max_val_rows,
        compact_lm_head=not device.gpu if cfg.compact_lm_head is None else cfg.compact_lm_head,
        logging_steps=cfg.logging_steps or (10 if device.gpu else 1),
    )


def _refuse_method(cfg: TrainConfig, device: Device) -> None:
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


def _refuse_precision(cfg: TrainConfig, device: Device) -> None:
    """bf16 only where the device computes it natively (the config has no fp16 option)."""
    if not cfg.bf16 or device.bf16_ok:
        return
    why = (
        "this CPU has no native bf16 (AMX or AVX512-BF16), and emulated bf16 runs many times "
        "slower than fp32"
        if not device.gpu
        else f"{device.name} does not support bf16"
    )
    raise ConfigError(f"must be false on this device: {why}", where="bf16", value=cfg.bf16)


def _refuse_attention(cfg: TrainConfig, attn: str, packing: bool) -> None:
    """Kernels that would silently let packed sequences attend to each other."""
    if cfg.share_prefix and cfg.packing:
        raise ConfigError(
            "must be false with share_prefix (they exclude each other)",
            where="packing",
            value=cfg.packing,
        )
    if cfg.share_prefix and attn != "sdpa":
        raise ConfigError(
            "must be sdpa with share_prefix (FlashAttention takes no 4-D mask; eager adds the "
            "boolean mask to the scores instead of masking with it)",
            where="attn_implementation",
            value=cfg.attn_implementation,
        )
    explicit = cfg.packing and cfg.attn_implementation is not None
    if (packing or explicit) and "flash" not in attn:
        raise ConfigError(
            "must be a FlashAttention kernel with packing (sdpa and eager ignore the position "
            "ids that separate packed rows)",
            where="attn_implementation",
            value=cfg.attn_implementation,
        )
