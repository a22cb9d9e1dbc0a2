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
from pathlib import Path

from toolsft.hardware import cpu_has_bf16
from toolsft.train import distributed
from toolsft.train.config import FIELDS, ConfigError, TrainConfig

logger = logging.getLogger(__name__)

ROWS_PER_STEP = 16
"""Target rows per optimizer step when batch size and accumulation are auto."""
CPU_TOKENS_PER_MICRO_BATCH = 2048
GPU_TOKENS_PER_MICRO_BATCH = 16384
DEFAULT_OPTIM = FIELDS["optim"].default
"""`optim` left at its default is the device's choice (fused AdamW on CUDA)."""


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


def resolve_auto(
    cfg: TrainConfig,
    device: Device,
    model: Path | str | None = None,
    free: int | None = None,
    world: int | None = None,
) -> TrainConfig:
    """Fill every None with the device's choice; refuse options the device cannot run.

    `model` (the base model's local folder) and `free` (bytes the device has free; read from
    the device when None) let gradient checkpointing turn off where the stage fits without it.
    `world` is the number of processes (from the launcher's environment when None): the
    automatic accumulation keeps ~`ROWS_PER_STEP` rows per optimizer step across all of them.
    """
    _refuse_method(cfg, device)
    _refuse_precision(cfg, device)
    if cfg.packing and not device.flash_attn:
        logger.warning("packing = true without FlashAttention: falls back to padded batches")
    tokens = GPU_TOKENS_PER_MICRO_BATCH if device.gpu else CPU_TOKENS_PER_MICRO_BATCH
    batch = cfg.batch_size or max(1, min(ROWS_PER_STEP, tokens // cfg.max_length))
    world = distributed.world_size() if world is None else max(1, world)
    accum = cfg.grad_accum or max(1, math.ceil(ROWS_PER_STEP / (batch * world)))
    attn = cfg.attn_implementation or ("flash_attention_2" if device.flash_attn else "sdpa")
    if cfg.share_prefix and cfg.attn_implementation is None:
        attn = "sdpa"  # the only kernel that applies the packs' boolean 4-D mask
    packing = (
        (device.gpu and "flash" in attn and not cfg.share_prefix)
        if cfg.packing is None
        else bool(cfg.packing and device.flash_attn)
    )
    _refuse_attention(cfg, attn, packing)
    if cfg.gradient_checkpointing and not cfg.prefix_grad:
        raise ConfigError(
            "must be false with prefix_grad false (checkpointed layers drop the cache that "
            "hands the detached prefix to the rows)",
            where="gradient_checkpointing",
            value=cfg.gradient_checkpointing,
        )
    resolved = cfg.replace(
        batch_size=batch,
        grad_accum=accum,
        bf16=device.bf16_ok if cfg.bf16 is None else cfg.bf16,
        packing=packing,
        attn_implementation=attn,
        use_liger_kernel=(device.gpu and device.liger)
        if cfg.use_liger_kernel is None
        else cfg.use_liger_kernel,
        max_val_rows=(64 if device.gpu else 16) if cfg.max_val_rows is None else cfg.max_val_rows,
        compact_lm_head=not device.gpu if cfg.compact_lm_head is None else cfg.compact_lm_head,
        logging_steps=cfg.logging_steps or (10 if device.gpu else 1),
        # The default AdamW, fused into one kernel per step on CUDA (one launch for all tensors)
        optim="adamw_torch_fused" if device.gpu and cfg.optim == DEFAULT_OPTIM else cfg.optim,
    )
    if resolved.gradient_checkpointing is None:
        resolved = resolved.replace(
            gradient_checkpointing=_auto_checkpointing(resolved, device, model, free)
        )
    return resolved


def _auto_checkpointing(
    cfg: TrainConfig, device: Device, model: Path | str | None, free: int | None
) -> bool:
    """On only where the stage would not fit without it (the memory estimate,
    `toolsft.train.memory`): recomputing every layer's forward in backward adds about a third
    to a step's compute. Off on CPU, where 1-2 rows' activations fit, and with a detached
    prefix, which needs the layers' cache."""
    if not device.gpu or not cfg.prefix_grad:
        return False
    from toolsft.train import memory

    shape = memory.read_shape(model) if model is not None else None
    if shape is None:
        return True  # unknown model: the safe side
    if free is None:
        try:
            free = memory.free_bytes(device)
        except (OSError, RuntimeError) as exc:
            logger.info("gradient checkpointing on: free memory unknown (%s)", exc)
            return True
    need = memory.estimate(shape, cfg.replace(gradient_checkpointing=False), gpu=True).total
    fits = need <= free
    logger.info(
        "gradient checkpointing %s: about %.1f GB without it, %.1f GB free",
        "off" if fits else "on",
        need / memory.GB,
        free / memory.GB,
    )
    return not fits


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
