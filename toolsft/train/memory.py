"""Estimate a stage's peak memory before training, and refuse a stage that cannot fit.

A run that outgrows memory dies to the OOM killer (or a CUDA OOM) minutes in, after loading and
checking everything; this says up front what to lower. The arithmetic (`estimate`) takes the
model's shape and the resolved config and returns bytes: an upper bound (every micro-batch
full to max_length), meant to be at most ~2x the measured peak. `check_memory` reads the
model's config.json and what the device has free.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolsft.errors import ToolsftError
from toolsft.train.config import TrainConfig
from toolsft.train.device import Device

logger = logging.getLogger(__name__)

GB = 2**30
ALL_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
STATE_BYTES = 16
"""Per trainable parameter: the fp32 weight, its gradient and AdamW's two moments."""
SAVED_PER_TOKEN = (12, 4, 6)
"""Values autograd keeps per token and layer for backward, as multiples of (hidden size,
MLP width, attention width): norms, residuals and LoRA inputs, the gated MLP, q/k/v (repeated
for grouped-query attention) and the attention output. Fitted to measured CPU peaks from
above, not derived from one kernel's exact choices."""
OVERHEAD = GB // 4
"""The tokenizer, the encoded data, the trainer and the allocator's slack."""


class StageTooBigError(ToolsftError):
    """The stage would not fit the device's free memory; the message says what to lower."""


@dataclass(frozen=True)
class Shape:
    """What sizes a decoder-only transformer's memory (from its config.json)."""

    vocab: int
    hidden: int
    layers: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int
    tied: bool

    def linears(self) -> dict[str, tuple[int, int]]:
        """(in, out) features of each projection in one layer (Llama/Qwen/Mistral names)."""
        q, kv = self.heads * self.head_dim, self.kv_heads * self.head_dim
        h, i = self.hidden, self.intermediate
        return {
            "q_proj": (h, q),
            "k_proj": (h, kv),
            "v_proj": (h, kv),
            "o_proj": (q, h),
            "gate_proj": (h, i),
            "up_proj": (h, i),
            "down_proj": (i, h),
        }

    @property
    def params(self) -> int:
        per_layer = sum(a * b for a, b in self.linears().values()) + 2 * self.hidden
        embed = self.vocab * self.hidden
        return self.layers * per_layer + embed * (1 if self.tied else 2) + self.hidden


def shape_from_config(config: dict[str, Any]) -> Shape | None:
    """The shape of a config.json, or None where it lacks the usual fields."""
    try:
        hidden, heads = int(config["hidden_size"]), int(config["num_attention_heads"])
        return Shape(
            vocab=int(config["vocab_size"]),
            hidden=hidden,
            layers=int(config["num_hidden_layers"]),
            intermediate=int(config["intermediate_size"]),
            heads=heads,
            kv_heads=int(config.get("num_key_value_heads") or heads),
            head_dim=int(config.get("head_dim") or hidden // heads),
            tied=bool(config.get("tie_word_embeddings", False)),
        )
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return None


@dataclass(frozen=True)
class Estimate:
    """Bytes at the stage's peak, by what holds them."""

    weights: int
    trainable: int
    activations: int
    logits: int

    @property
    def total(self) -> int:
        return self.weights + self.trainable + self.activations + self.logits + OVERHEAD


def trainable_params(shape: Shape, cfg: TrainConfig) -> int:
    """Parameters the optimizer updates: the whole model, or the LoRA matrices (plus any
    modules_to_save copies)."""
    if cfg.method == "full":
        return shape.params
    wanted = ALL_LINEAR if cfg.target_modules == ["all-linear"] else cfg.target_modules
    per_layer = sum(
        cfg.lora_r * (a + b) for name, (a, b) in shape.linears().items() if name in wanted
    )
    layers = min(cfg.lora_layers or shape.layers, shape.layers)
    embed = shape.vocab * shape.hidden
    saved = sum(embed for m in cfg.modules_to_save if m in ("lm_head", "embed_tokens"))
    return per_layer * layers + saved


def estimate(shape: Shape, cfg: TrainConfig, gpu: bool) -> Estimate:
    """Peak memory of one training stage of `cfg` (resolved: no None left) on `shape`."""
    assert cfg.batch_size is not None, "resolve_auto() fills batch_size"
    frozen_bytes = 2 if cfg.bf16 and cfg.method != "full" else 4
    if cfg.method == "qlora":
        frozen_bytes = 1  # 4-bit weights, with the embeddings and norms left in bf16
    weights = shape.params * frozen_bytes
    # Full fine-tuning's fp32 weights are `weights` already; LoRA's are extra.
    trainable = trainable_params(shape, cfg) * (STATE_BYTES - 4 * (cfg.method == "full"))
    tokens = cfg.batch_size * cfg.max_length
    # 4 bytes even under bf16 autocast: norms, softmax and the residual stream stay fp32.
    h, i, q = shape.hidden, shape.intermediate, shape.heads * shape.head_dim
    a, b, c = SAVED_PER_TOKEN
    per_layer = (a * h + b * i + c * q) * 4 * tokens
    # Backward stops at the lowest trained layer.
    deep = shape.layers
    if cfg.method != "full" and cfg.lora_layers:
        deep = min(cfg.lora_layers, shape.layers)
    scores = 0
    if materializes_scores(cfg, gpu):  # [batch, heads, L, L] attention weights per layer
        scores = cfg.batch_size * shape.heads * cfg.max_length**2 * 4
    if cfg.gradient_checkpointing:  # every layer's input; one layer recomputed, with its grads
        activations = deep * h * 4 * tokens + 2 * per_layer + 3 * scores
    else:
        activations = deep * (per_layer + scores) + 2 * scores
    # The compact head (CPU) projects labelled tokens only, but evaluation scores every
    # position (logits and log-softmax); training on the full head also keeps the gradient.
    logits = tokens * shape.vocab * 4 * (2 if cfg.compact_lm_head else 3)
    return Estimate(weights, trainable, activations, logits)


def materializes_scores(cfg: TrainConfig, gpu: bool) -> bool:
    """Whether the attention kernel keeps the full score matrix: eager always; sdpa on CPU
    when it is given a mask (shared-prefix packs, padded batches of several rows)."""
    if cfg.attn_implementation == "eager":
        return True
    sdpa = cfg.attn_implementation == "sdpa"
    assert cfg.batch_size is not None, "resolve_auto() fills batch_size"
    return sdpa and not gpu and (cfg.share_prefix or cfg.batch_size > 1)


def read_shape(model: Path | str) -> Shape | None:
    """The shape of a local model folder; None for hub ids and configs without the usual fields."""
    path = Path(model) / "config.json"
    if isinstance(model, str) or not path.is_file():
        return None
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return shape_from_config(config) if isinstance(config, dict) else None


def free_bytes(device: Device) -> int:
    """What the stage may still use: free GPU memory, or MemAvailable (/proc/meminfo) on CPU."""
    if device.gpu:
        import torch

        return int(torch.cuda.mem_get_info()[0])
    with open("/proc/meminfo", encoding="ascii") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    raise OSError("/proc/meminfo has no MemAvailable")


def check_memory(cfg: TrainConfig, device: Device, model: Path | str) -> Estimate | None:
    """Refuse a stage whose estimated peak exceeds the device's free memory; return the
    estimate (None where the model's shape or the free memory cannot be read)."""
    from toolsft.train import distributed

    if distributed.launched():  # DeepSpeed and FSDP shard what one process would hold
        logger.info("memory check skipped: %d processes", distributed.world_size())
        return None
    shape = read_shape(model)
    if shape is None:
        logger.info("memory check skipped: no readable config.json shape for %s", model)
        return None
    try:
        free = free_bytes(device)
    except OSError as exc:
        logger.info("memory check skipped: %s", exc)
        return None
    est = estimate(shape, cfg, device.gpu)
    logger.info(
        "memory estimate %.2f GB (weights %.2f, optimizer %.2f, activations %.2f, logits %.2f); "
        "%.2f GB free",
        est.total / GB,
        est.weights / GB,
        est.trainable / GB,
        est.activations / GB,
        est.logits / GB,
        free / GB,
    )
    if est.total > free:
        lower = "batch_size or max_length" + (
            ""
            if cfg.gradient_checkpointing or not cfg.prefix_grad
            else ", or turn gradient_checkpointing on"
        )
        raise StageTooBigError(
            f"this stage needs about {est.total / GB:.1f} GB (estimated: batch_size "
            f"{cfg.batch_size} x max_length {cfg.max_length}) but the {device.kind} has "
            f"{free / GB:.1f} GB free; lower {lower}"
        )
    return est
