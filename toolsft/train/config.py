"""Training configuration: one dataclass, help text in field metadata (TRL style).

Precedence: field defaults < YAML file (`--config`) < its `stages: {N: {...}}` section for the
stage being trained < explicit CLI options. `None` means "auto": resolved per device by
`toolsft.train.device.resolve_auto`, and the resolved values are what a stage saves.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolsft.errors import ToolsftError

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


def _f(default: Any, help: str, **kw: Any) -> Any:
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"help": help, **kw})
    return field(default=default, metadata={"help": help, **kw})


@dataclass
class TrainConfig:
    """Everything that decides what a stage trains and how."""

    # --- model and template ---
    model: str = _f(
        "smollm2-135m",
        "Base model: an alias (smollm2-135m, tiny-random), a Hugging Face id or a local folder.",
    )
    chat_template: str = _f(
        "auto",
        "Template for training: 'auto' keeps a model's own tool-aware template and uses toolsft's otherwise; 'toolsft' or 'model' force one.",
        choices=TEMPLATES,
    )
    # --- method ---
    method: str = _f(
        "lora",
        "lora (default), qlora (4-bit base via bitsandbytes, GPU only) or full (full fine-tuning).",
        choices=METHODS,
    )
    lora_r: int = _f(16, "LoRA rank.")
    lora_alpha: int = _f(32, "LoRA alpha (scale = alpha / r, or alpha / sqrt(r) with rsLoRA).")
    lora_dropout: float = _f(0.05, "Dropout on the LoRA path.")
    target_modules: list[str] = _f(
        ["q_proj", "k_proj", "v_proj", "o_proj"],
        "Modules that get LoRA adapters ('all-linear' for every linear layer).",
    )
    modules_to_save: list[str] = _f(
        [],
        "Modules trained in full and saved with the adapter. Adding lm_head/embed_tokens makes the adapter unloadable by vLLM: serve it with `toolsft export --merge`.",
    )
    lora_layers: int = _f(
        0,
        "Put LoRA only on the last N transformer layers (0: all). Backward then stops at layer "
        "L-N, so a step costs less: on CPU the demo trains the top layers of SmolLM2 only.",
    )
    use_dora: bool = _f(False, "Weight-decomposed LoRA (DoRA).")
    use_rslora: bool = _f(False, "Rank-stabilized LoRA scaling (alpha / sqrt(r)).")
    # --- optimization ---
    epochs: float = _f(1.0, "Epochs over the stage's (replay-mixed) training rows.")
    max_steps: int = _f(-1, "Stop after this many optimizer steps (-1: run the epochs).")
    max_time: float | None = _f(
        None,
        "Stop after this many seconds of optimizer steps (loading not counted), or at max_steps if that comes first; the stage saves as if it had ended. The schedule then runs over the time, not the steps: cosine decays to zero at the deadline whatever the machine's speed. The demo gives each stage its share of 20 minutes this way.",
    )
    learning_rate: float = _f(2e-4, "Peak learning rate (AdamW, cosine schedule).")
    lr_scheduler: str = _f("cosine", "Learning-rate schedule (transformers name).")
    warmup_ratio: float = _f(0.1, "Share of steps spent in linear warmup.")
    weight_decay: float = _f(0.01, "AdamW weight decay.")
    max_grad_norm: float = _f(1.0, "Gradient clipping norm.")
    optim: str = _f("adamw_torch", "Optimizer (transformers name).")
    batch_size: int | None = _f(
        None, "Rows per micro-batch per device (auto: fits the device; 1-2 on CPU)."
    )
    grad_accum: int | None = _f(
        None, "Micro-batches per optimizer step (auto: about 16 rows per step)."
    )
    max_length: int = _f(
        2048,
        "Longest row in tokens; longer rows are dropped (never truncated mid-call). Rows showing a suite's full tool list run ~1.6k tokens.",
    )
    seed: int = _f(0, "Seed for replay sampling, shuffling, LoRA init and dropout.")
    # --- curriculum ---
    replay_share: float = _f(
        0.2,
        "Share of a stage's training set drawn from earlier stages' training rows (against forgetting).",
    )
    answer_loss_only: bool = _f(
        False,
        "In this stage's own rows that answer from a tool result (stage 3), train the answer only, not the call before the result; replayed rows keep every turn. For a stage 3 meant to teach answering alone; in the CPU demo it did not stop stage 3 from forgetting 'no tool fits' and parallel calls, so the demo leaves it off.",
    )
    decision_weight: float = _f(
        1.0,
        "Loss weight of the tokens that decide a row: the first token of each assistant turn (call or talk), every value in a tool call (its name, its arguments) with the character after it (another argument or none), and the character after each </tool_call> (another call or the end of the turn). 1 is the plain SFT loss. Needs share_prefix. See toolsft.train.weights.",
    )
    max_train_rows: int | None = _f(
        None, "Use at most this many of the stage's own training rows (a budget knob for demos)."
    )
    max_drop_share: float = _f(
        0.1,
        "Abort if more than this share of rows exceeds max_length (a silent subset would skew the stage).",
    )
    max_val_rows: int | None = _f(
        None,
        "Validation rows used for eval loss (auto: 16 on CPU, 64 on GPU; evaluation costs "
        "training time: 30 rows of 1.5k tokens take minutes on 2 CPU cores).",
    )
    # --- checkpoints and early stopping ---
    save_steps: int = _f(
        50,
        "Checkpoint (and evaluate) every K optimizer steps; --resume restarts from the last one.",
    )
    save_total_limit: int = _f(2, "Checkpoints kept on disk (the best one is always kept).")
    early_stopping_patience: int = _f(
        3, "Stop after this many evaluations without a better val loss (0: off)."
    )
    keep_checkpoints: bool = _f(False, "Keep checkpoints/ after a stage completes.")
    # --- device and speed (None: auto) ---
    bf16: bool | None = _f(
        None, "bfloat16 mixed precision (auto: on where the device supports it)."
    )
    gradient_checkpointing: bool | None = _f(
        None, "Recompute activations in backward (auto: on GPU, off on CPU)."
    )
    packing: bool | None = _f(
        None,
        "Padding-free packing (auto: on GPU with FlashAttention, off on CPU where padded batches are faster).",
    )
    share_prefix: bool = _f(
        False,
        "Train rows that begin with the same prompt (`gen --show-all --group N`) as one sequence: the shared system prompt and tool list once, then each row's own turns, with a mask that keeps rows apart. Same loss, a fraction of the tokens; batch_size then counts packs, and max_length caps a pack.",
    )
    prefix_grad: bool = _f(
        True,
        "With share_prefix: backpropagate through each pack's shared prefix. False runs the prefix once without gradient and trains the rows against its keys and values: the same loss, steps 1.34x faster on CPU (SmolLM2-135M, a 1.65k-token pack with a 650-token prefix: 8.9 s instead of 11.9 s), but no gradient reaches the weights through the prefix's own keys and values.",
    )
    attn_implementation: str | None = _f(
        None, "Attention kernel (auto: flash_attention_2 when installed on GPU, else sdpa)."
    )
    use_liger_kernel: bool | None = _f(
        None, "Liger Triton kernels (auto: on GPU when liger-kernel is installed)."
    )
    compact_lm_head: bool | None = _f(
        None,
        "Project only assistant tokens through the LM head in the loss (auto: on CPU; GPUs use TRL's fused Triton head).",
    )
    logging_steps: int | None = _f(None, "Log every N optimizer steps (auto: 1 on CPU, 10 on GPU).")
    num_threads: int | None = _f(None, "CPU threads for torch (auto: torch's default).")

    def validate(
        self,
        where: str | None = None,
        sources: Mapping[str, tuple[str | None, str]] | None = None,
    ) -> TrainConfig:
        """Raise ConfigError naming the file, the field and the bad value.

        `where` is the file the values came from; `sources` maps a field to the (file, path)
        that set it (a YAML file and `stages.2.lora_r`, or no file and `--lora-r`), so the
        message points at what the user wrote.
        """
        for name, ok, want in self._rules():
            if not ok:
                file, path = (sources or {}).get(name, (where, name))
                raise ConfigError(
                    f"must be {want}", file=file, where=path, value=getattr(self, name)
                )
        return self

    def _rules(self) -> list[tuple[str, bool, str]]:
        floats = [f.name for f in dataclasses.fields(self) if f.type.startswith("float")]
        finite = [(n, _finite(getattr(self, n)), "a finite number") for n in floats]
        return finite + [
            ("method", self.method in METHODS, f"one of {', '.join(METHODS)}"),
            ("chat_template", self.chat_template in TEMPLATES, f"one of {', '.join(TEMPLATES)}"),
            ("lora_r", self.lora_r > 0, "> 0"),
            ("lora_alpha", self.lora_alpha > 0, "> 0"),
            ("lora_dropout", 0 <= self.lora_dropout < 1, "in [0, 1)"),
            ("lora_layers", self.lora_layers >= 0, ">= 0 (0: all layers)"),
            (
                "lora_layers",
                not self.lora_layers or self.target_modules != ["all-linear"],
                "0 with target_modules all-linear (peft cannot limit it to some layers)",
            ),
            ("epochs", self.epochs > 0, "> 0"),
            ("max_steps", self.max_steps == -1 or self.max_steps > 0, "> 0, or -1 for epochs"),
            ("learning_rate", self.learning_rate > 0, "> 0"),
            ("warmup_ratio", 0 <= self.warmup_ratio < 1, "in [0, 1)"),
            ("weight_decay", self.weight_decay >= 0, ">= 0"),
            ("max_grad_norm", self.max_grad_norm > 0, "> 0"),
            ("lr_scheduler", self.lr_scheduler in SCHEDULERS, f"one of {', '.join(SCHEDULERS)}"),
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
            ("decision_weight", self.decision_weight > 0, "> 0"),
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
            ("max_length", self.max_length >= 32, ">= 32"),
            ("seed", 0 <= self.seed < 2**32, "in [0, 2**32)"),
            ("replay_share", 0 <= self.replay_share < 1, "in [0, 1)"),
            ("max_train_rows", _none_or(self.max_train_rows, 1), "> 0"),
            ("max_drop_share", 0 <= self.max_drop_share <= 1, "in [0, 1]"),
            ("save_steps", self.save_steps > 0, "> 0"),
            ("save_total_limit", self.save_total_limit > 0, "> 0"),
            ("early_stopping_patience", self.early_stopping_patience >= 0, ">= 0 (0: off)"),
            ("batch_size", _none_or(self.batch_size, 1), "> 0"),
            ("grad_accum", _none_or(self.grad_accum, 1), "> 0"),
            ("max_val_rows", _none_or(self.max_val_rows, 0), ">= 0"),
            ("logging_steps", _none_or(self.logging_steps, 1), "> 0"),
            ("num_threads", _none_or(self.num_threads, 1), "> 0"),
            ("target_modules", bool(self.target_modules) or self.method == "full", "non-empty"),
        ]

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}


def _finite(value: float | None) -> bool:
    return value is None or math.isfinite(value)


def _none_or(value: int | None, least: int) -> bool:
    return value is None or value >= least


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


def read_config_yaml(path: Path) -> Any:
    """A config or budget YAML file, read with the same limits and errors as a train config."""
    from toolsft.train import config_file

    return config_file.load_yaml_file(Path(path))


def dump_yaml(cfg: TrainConfig | dict[str, Any]) -> str:
    import yaml

    data = cfg.to_dict() if isinstance(cfg, TrainConfig) else cfg
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
