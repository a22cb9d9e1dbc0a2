"""Build the model (base + LoRA, new or continued) and TRL's `SFTConfig` from a TrainConfig.

Heavy imports (torch, transformers, peft, trl) happen inside functions so that importing
`toolsft.train` stays cheap for the CLI.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

from toolsft.train.config import TrainConfig
from toolsft.train.device import Device

logger = logging.getLogger(__name__)

SERVE_BREAKING_MODULES = ("lm_head", "embed_tokens", "wte", "embed_out")


def serve_requires_merge(cfg: TrainConfig) -> bool:
    """vLLM rejects LoRA adapters that carry full copies of these modules (modules_to_save)."""
    return any(m in SERVE_BREAKING_MODULES for m in cfg.modules_to_save)


def load_base(path: Path | str, cfg: TrainConfig, device: Device) -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {"attn_implementation": cfg.attn_implementation}
    # With bf16, LoRA keeps the frozen base in bf16 (half the memory, and on CPU no per-step
    # cast of every weight: ~7% of a step); the adapter stays fp32 (peft upcasts it). Full
    # fine-tuning keeps fp32 master weights and relies on bf16 autocast.
    if cfg.bf16 and cfg.method != "full":
        kwargs["dtype"] = torch.bfloat16
    else:
        kwargs["dtype"] = torch.float32
    if cfg.method == "qlora":
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16,
        )
    try:
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except (ImportError, ValueError) as exc:
        if kwargs["attn_implementation"] == "sdpa":
            raise
        logger.warning(
            "attn_implementation=%s failed (%s); using sdpa", cfg.attn_implementation, exc
        )
        kwargs["attn_implementation"] = "sdpa"
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    if cfg.method == "qlora":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=bool(cfg.gradient_checkpointing)
        )
    return model


def lora_config(cfg: TrainConfig, num_layers: int | None = None) -> Any:
    """peft's LoraConfig; `num_layers` (the model's depth) is needed when `cfg.lora_layers`."""
    from peft import LoraConfig

    if serve_requires_merge(cfg):
        logger.warning(
            "modules_to_save=%s: vLLM cannot load LoRA adapters that carry full modules; serve "
            "this run only after `toolsft export --merge`",
            cfg.modules_to_save,
        )
    targets: Any = cfg.target_modules
    if targets == ["all-linear"]:
        targets = "all-linear"
    layers = None
    if cfg.lora_layers:
        if not num_layers:
            raise ValueError("lora_layers needs the model's number of layers")
        if targets == "all-linear":
            from toolsft.train.config import ConfigError

            raise ConfigError(
                f"lora_layers = {cfg.lora_layers}: name the target_modules (peft cannot limit "
                "'all-linear' to some layers), e.g. q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj"
            )
        layers = list(range(max(num_layers - cfg.lora_layers, 0), num_layers))
    return LoraConfig(
        r=cfg.lora_r,
        layers_to_transform=layers,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=targets,
        modules_to_save=list(cfg.modules_to_save) or None,
        use_dora=cfg.use_dora,
        use_rslora=cfg.use_rslora,
        bias="none",
        task_type="CAUSAL_LM",
    )


def attach_adapter(model: Any, cfg: TrainConfig, parent_weights: Path | None) -> Any:
    """A new LoRA (stage 1) or the parent stage's adapter, trainable (stage N > 1)."""
    if cfg.method == "full":
        for p in model.parameters():
            p.requires_grad_(True)
        return model
    from peft import PeftModel, get_peft_model

    # ZeRO-3 gathers parameters into buffers of one dtype: peft's fp32 adapter on a bf16 base
    # fails at the first step (TRL #6089), so the adapter takes the base's dtype there.
    zero3 = zero3_enabled() and cfg.method != "qlora"
    if parent_weights is None:
        from peft.utils.error import NoMatchingPeftModuleError

        try:
            peft_model = get_peft_model(
                model,
                lora_config(cfg, model.config.num_hidden_layers),
                autocast_adapter_dtype=not zero3,
            )
        except NoMatchingPeftModuleError as exc:
            from toolsft.train.config import ConfigError

            raise ConfigError(
                "no module of the model matches (e.g. q_proj,v_proj or all-linear)",
                where="target_modules",
                value=",".join(cfg.target_modules),
            ) from exc
    else:
        peft_model = PeftModel.from_pretrained(
            model, str(parent_weights), is_trainable=True, autocast_adapter_dtype=not zero3
        )
        _warn_lora_drift(peft_model.peft_config["default"], cfg, parent_weights)
    if zero3:
        cast_trainable(peft_model, model.dtype)  # a parent saved in fp32 loads as fp32
    return peft_model


def zero3_enabled() -> bool:
    """DeepSpeed ZeRO-3 is on (TrainingArguments set it up from the accelerate config)."""
    from transformers.integrations.deepspeed import is_deepspeed_zero3_enabled

    return bool(is_deepspeed_zero3_enabled())


def cast_trainable(model: Any, dtype: Any) -> None:
    """Give every trainable floating-point parameter `dtype`."""
    for p in model.parameters():
        if p.requires_grad and p.is_floating_point() and p.dtype != dtype:
            p.data = p.data.to(dtype)


def _warn_lora_drift(parent: Any, cfg: TrainConfig, where: Path) -> None:
    """Continuing an adapter keeps its shape; say so if the config asks for another one."""
    mine = {
        "r": cfg.lora_r,
        "lora_alpha": cfg.lora_alpha,
        "use_dora": cfg.use_dora,
        "use_rslora": cfg.use_rslora,
    }
    diff = {k: (getattr(parent, k), v) for k, v in mine.items() if getattr(parent, k) != v}
    if diff:
        logger.warning(
            "%s: continuing the parent adapter as it is; ignoring %s",
            where,
            ", ".join(f"{k}={v[1]} (parent: {v[0]})" for k, v in diff.items()),
        )


def sft_config(cfg: TrainConfig, device: Device, output_dir: Path, has_val: bool) -> Any:
    from trl import SFTConfig

    # resolve_auto() has filled every None these read.
    assert cfg.batch_size is not None and cfg.grad_accum is not None
    assert cfg.max_val_rows is not None and cfg.logging_steps is not None
    evaluate = has_val and cfg.max_val_rows > 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # use_liger_kernel deprecation notice
        return SFTConfig(
            output_dir=str(output_dir),
            num_train_epochs=cfg.epochs,
            max_steps=cfg.max_steps,
            per_device_train_batch_size=cfg.batch_size,
            per_device_eval_batch_size=cfg.batch_size,
            gradient_accumulation_steps=cfg.grad_accum,
            learning_rate=cfg.learning_rate,
            lr_scheduler_type=cfg.lr_scheduler,
            warmup_steps=cfg.warmup_ratio,  # a float in [0, 1) is a ratio in transformers 5
            weight_decay=cfg.weight_decay,
            max_grad_norm=cfg.max_grad_norm,
            optim=cfg.optim,
            bf16=bool(cfg.bf16),
            fp16=False,
            gradient_checkpointing=bool(cfg.gradient_checkpointing),
            max_length=cfg.max_length,
            packing=bool(cfg.packing),
            padding_free=bool(cfg.packing),
            # Our dataset is pre-tokenized with `assistant_masks`: TRL turns them into labels.
            assistant_only_loss=False,
            train_sampling_strategy="group_by_length"
            if cfg.batch_size and cfg.batch_size > 1 and not cfg.packing and not cfg.share_prefix
            else "random",
            # Packs come ready (ids, labels, positions, segments) for toolsft's collator.
            dataset_kwargs={"skip_prepare_dataset": True} if cfg.share_prefix else None,
            remove_unused_columns=not cfg.share_prefix,
            prediction_loss_only=True,
            logging_steps=cfg.logging_steps,
            eval_strategy="steps" if evaluate else "no",
            eval_steps=cfg.save_steps,
            save_strategy="steps",
            save_steps=cfg.save_steps,
            save_total_limit=cfg.save_total_limit,
            load_best_model_at_end=evaluate and cfg.early_stopping_patience > 0,
            metric_for_best_model="eval_loss",
            greater_is_better=False,
            include_num_input_tokens_seen="non_padding",
            report_to="none",
            disable_tqdm=True,
            seed=cfg.seed,
            data_seed=cfg.seed,
            use_cpu=not device.gpu,
            use_liger_kernel=bool(cfg.use_liger_kernel),
            dataloader_num_workers=0,
            # Every trainable parameter gets a gradient each step: DDP need not search for
            # unused ones (a search that also breaks with gradient checkpointing).
            ddp_find_unused_parameters=False,
            shuffle_dataset=False,
        )


def trainable_summary(model: Any) -> dict[str, int]:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"total_params": total, "trainable_params": trainable}
