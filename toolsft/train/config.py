"""Training configuration: one dataclass whose fields are `train`'s options and a config
file's keys (`toolsft.options`: declared once, with help, default and bounds).

Precedence: field defaults < YAML file (`--config`) < its `stages: {N: {...}}` section for the
stage being trained < explicit CLI options. `None` means "auto": resolved per device by
`toolsft.train.device.resolve_auto`, and the resolved values are what a stage saves.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolsft.errors import ToolsftError
from toolsft.options import check_fields, option

METHODS = ("lora", "qlora", "full")
SCHEDULERS = (
    "linear",
    "cosine",
    "cosine_with_restarts",
    "polynomial",
    "constant",
    "constant_with_warmup",
    "inverse_sqrt",
)
"""transformers' schedules that need no extra arguments (checked here, before a model loads)."""
TIMED_SCHEDULES = ("constant", "constant_with_warmup", "linear", "cosine")
"""Schedules that `max_time` can run over the time (`toolsft.train.timebudget.SCHEDULES`)."""
TEMPLATES = ("auto", "toolsft", "model")


class ConfigError(ToolsftError, ValueError):
    """A bad configuration value; the message names the file (if any), field and value."""


@dataclass
class TrainConfig:
    """Everything that decides what a stage trains and how."""

    # --- model and template ---
    model: str = option(
        "smollm2-135m",
        "Base model: an alias (smollm2-135m, tiny-random), a Hugging Face id or a local folder.",
    )
    chat_template: str = option(
        "auto",
        "Template to train with: auto keeps a model's own tool-aware template and uses "
        "toolsft's otherwise; toolsft or model force one.",
        choices=TEMPLATES,
    )
    # --- method ---
    method: str = option(
        "lora",
        "lora, qlora (a 4-bit base through bitsandbytes, GPU only) or full fine-tuning.",
        choices=METHODS,
    )
    lora_r: int = option(16, "LoRA rank.", above=0)
    lora_alpha: int = option(
        32, "LoRA alpha (scale alpha / r, or alpha / sqrt(r) with rsLoRA).", above=0
    )
    lora_dropout: float = option(0.05, "Dropout on the LoRA path.", low=0, below=1)
    target_modules: list[str] = option(
        ["q_proj", "k_proj", "v_proj", "o_proj"],
        "Modules that get LoRA adapters, comma-separated (all-linear: every linear layer).",
    )
    modules_to_save: list[str] = option(
        [],
        "Modules trained in full and saved with the adapter, comma-separated. With lm_head or "
        "embed_tokens vLLM cannot load the adapter: serve `toolsft export --merge`.",
    )
    lora_layers: int = option(
        0,
        "LoRA on the last N transformer layers only (0: all): backward stops below them, so "
        "a step costs less.",
        low=0,
    )
    use_dora: bool = option(False, "Weight-decomposed LoRA (DoRA).", cli="--dora")
    use_rslora: bool = option(
        False, "Rank-stabilized LoRA scaling (alpha / sqrt(r)).", cli="--rslora"
    )
    # --- optimization ---
    epochs: float = option(1.0, "Epochs over the stage's training rows (replay included).", above=0)
    max_steps: int = option(-1, "Optimizer steps per stage (-1: run the epochs).")
    max_time: float | None = option(
        None,
        "Seconds of optimizer steps per stage (loading not counted), unless max_steps ends it "
        "first; the stage then saves as if it had ended. The schedule runs over the time, not "
        "the steps.",
        unset="no limit",
    )
    learning_rate: float = option(2e-4, "Peak learning rate.", cli="--lr", above=0)
    lr_scheduler: str = option(
        "cosine",
        "Learning-rate schedule (a transformers name); with max_time: "
        + ", ".join(TIMED_SCHEDULES)
        + ".",
        choices=SCHEDULERS,
    )
    warmup_ratio: float = option(
        0.1, "Share of the steps (of the time, with max_time) in linear warmup.", low=0, below=1
    )
    weight_decay: float = option(0.01, "AdamW weight decay.", low=0)
    max_grad_norm: float = option(1.0, "Gradient clipping norm.", above=0)
    optim: str = option("adamw_torch", "Optimizer (a transformers name).")
    batch_size: int | None = option(
        None, "Rows per micro-batch per device (auto: what fits; 1-2 on CPU).", above=0
    )
    grad_accum: int | None = option(
        None, "Micro-batches per optimizer step (auto: about 16 rows per step).", above=0
    )
    max_length: int = option(
        2048, "Longest row in tokens; longer rows are dropped, never truncated.", low=32
    )
    seed: int = option(
        0, "Seed for replay sampling, shuffling, LoRA init and dropout.", low=0, below=2**32
    )
    # --- curriculum ---
    replay_share: float = option(
        0.2,
        "Share of a stage's training rows drawn from earlier stages' rows (against forgetting).",
        low=0,
        below=1,
    )
    decision_weight: float = option(
        1.0,
        "Loss weight of the tokens that decide a row: each assistant turn's first token, every "
        "value of a tool call (name, arguments) with the character after it, and the character "
        "after each call; 1 is the plain SFT loss. Needs share_prefix.",
        above=0,
    )
    max_train_rows: int | None = option(
        None,
        "Use at most this many of the stage's own training rows.",
        cli="--max-rows",
        above=0,
        unset="all",
    )
    max_drop_share: float = option(
        0.1,
        "Stop if more than this share of rows is longer than max_length (a silent subset "
        "would skew the stage).",
        low=0,
        high=1,
    )
    max_val_rows: int | None = option(
        None, "Validation rows for the eval loss (auto: 16 on CPU, 64 on GPU).", low=0
    )
    # --- checkpoints and early stopping ---
    save_steps: int = option(
        50,
        "Checkpoint and evaluate every K optimizer steps (--resume starts from the last).",
        above=0,
    )
    save_total_limit: int = option(
        2, "Checkpoints kept on disk (the best one is always kept).", above=0
    )
    early_stopping_patience: int = option(
        3, "Stop after this many evaluations without a better val loss (0: never).", low=0
    )
    keep_checkpoints: bool = option(False, "Keep checkpoints/ after a stage completes.")
    # --- device and speed (None: auto) ---
    bf16: bool | None = option(None, "bfloat16 mixed precision (auto: where the device has it).")
    gradient_checkpointing: bool | None = option(
        None, "Recompute activations in backward (auto: on GPU, off on CPU)."
    )
    packing: bool | None = option(
        None, "Padding-free packing (auto: on GPU with FlashAttention, off on CPU)."
    )
    share_prefix: bool = option(
        False,
        "Train rows that begin with the same prompt (`gen --show-all --group N`) as one "
        "sequence: the shared prompt once, then each row's own turns, masked apart. Same loss, "
        "fewer tokens; batch_size then counts packs and max_length caps a pack.",
    )
    prefix_grad: bool = option(
        True,
        "With share_prefix: backpropagate through each pack's shared prefix. Off, the prefix "
        "runs once without gradient and the rows train against its keys and values: the same "
        "loss, faster steps, but no gradient through the prefix's own keys and values.",
        cli="--no-prefix-grad",
    )
    attn_implementation: str | None = option(
        None, "Attention kernel (auto: flash_attention_2 where installed on GPU, else sdpa)."
    )
    use_liger_kernel: bool | None = option(
        None, "Liger Triton kernels (auto: on GPU where liger-kernel is installed)."
    )
    compact_lm_head: bool | None = option(
        None,
        "Project only assistant tokens through the LM head in the loss (auto: on CPU; GPUs "
        "use TRL's fused head).",
    )
    logging_steps: int | None = option(
        None, "Log every N optimizer steps (auto: 1 on CPU, 10 on GPU).", above=0
    )
    num_threads: int | None = option(
        None, "CPU threads for torch (auto: torch's default).", above=0
    )

    def validate(
        self,
        where: str | None = None,
        sources: Mapping[str, tuple[str | None, str]] | None = None,
    ) -> TrainConfig:
        """Raise ConfigError naming the file, the field and the bad value.

        `where` is the file the values came from; `sources` maps a field to the (file, path)
        that set it (a YAML file and `stages.2.lora_r`, or no file and `--lora-r`), so the
        message points at what the user wrote. Each field's own bounds are in its declaration;
        `_rules` holds what involves more than one field.
        """
        src = {name: (where, name) for name in FIELDS} | dict(sources or {})
        check_fields(self, src, error=ConfigError)
        for name, ok, want in self._rules():
            if not ok:
                file, path = src[name]
                raise ConfigError(
                    f"must be {want}", file=file, where=path, value=getattr(self, name)
                )
        return self

    def _rules(self) -> list[tuple[str, bool, str]]:
        return [
            (
                "lora_layers",
                not self.lora_layers or self.target_modules != ["all-linear"],
                "0 with target_modules all-linear (peft cannot limit it to some layers)",
            ),
            ("max_steps", self.max_steps == -1 or self.max_steps > 0, "> 0, or -1 for epochs"),
            ("max_time", self.max_time is None or self.max_time > 0, "> 0 seconds"),
            (
                "lr_scheduler",
                self.max_time is None or self.lr_scheduler in TIMED_SCHEDULES,
                f"one of {', '.join(TIMED_SCHEDULES)} with max_time",
            ),
            (
                "prefix_grad",
                self.prefix_grad or self.share_prefix,
                "true without share_prefix (only shared-prefix packs have a prefix to detach)",
            ),
            (
                "decision_weight",
                self.decision_weight == 1 or self.share_prefix,
                "1 without share_prefix (the weights travel with shared-prefix packs)",
            ),
            (
                "packing",
                not (self.share_prefix and self.packing),
                "false with share_prefix (they exclude each other)",
            ),
            (
                "attn_implementation",
                not self.share_prefix or self.attn_implementation in (None, "sdpa"),
                "sdpa with share_prefix (FlashAttention takes no 4-D mask; eager adds the "
                "boolean mask to the scores instead of masking with it)",
            ),
            (
                "attn_implementation",
                not self.packing or "flash" in (self.attn_implementation or "flash"),
                "a FlashAttention kernel with packing (sdpa and eager ignore the position ids "
                "that separate packed rows)",
            ),
            (
                "gradient_checkpointing",
                self.prefix_grad or not self.gradient_checkpointing,
                "false with prefix_grad false (checkpointed layers drop the cache that hands "
                "the detached prefix to the rows)",
            ),
            ("target_modules", bool(self.target_modules) or self.method == "full", "non-empty"),
        ]

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}


def load_config(
    path: Path | None,
    stage: int | None = None,
    overrides: dict[str, Any] | None = None,
    labels: Mapping[str, str] | None = None,
) -> TrainConfig:
    """Defaults < YAML file < its `stages.<N>` section < explicit overrides, validated
    (`toolsft.train.config_file.load_config`)."""
    from toolsft.train import config_file

    return config_file.load_config(path, stage, overrides, labels)


def dump_yaml(cfg: TrainConfig | dict[str, Any]) -> str:
    import yaml

    data = cfg.to_dict() if isinstance(cfg, TrainConfig) else cfg
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
