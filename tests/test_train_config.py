"""TrainConfig defaults, YAML loading, errors, and per-device auto choices."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from toolsft.train.build import serve_requires_merge
from toolsft.train.config import ConfigError, TrainConfig, dump_yaml, load_config
from toolsft.train.device import Device, resolve_auto

CPU = Device("cpu", bf16_ok=False, flash_attn=False, liger=False, name="cpu")
GPU = Device("cuda", bf16_ok=True, flash_attn=True, liger=True, name="H100")


def test_defaults_follow_the_seeds() -> None:
    c = TrainConfig()
    assert (c.lora_r, c.lora_alpha, c.lora_dropout) == (16, 32, 0.05)
    assert c.target_modules == ["q_proj", "k_proj", "v_proj", "o_proj"]
    assert (c.lr_scheduler, c.warmup_ratio, c.weight_decay, c.max_grad_norm) == (
        "cosine",
        0.1,
        0.01,
        1.0,
    )
    assert c.optim.startswith("adamw") and c.replay_share == 0.2
    assert c.modules_to_save == [] and not serve_requires_merge(c)


def test_every_field_has_help() -> None:
    for f in dataclasses.fields(TrainConfig):
        assert f.metadata.get("help"), f.name


def test_yaml_with_stage_sections(tmp_path: Path) -> None:
    path = tmp_path / "train.yaml"
    path.write_text(
        "learning_rate: 1e-4\nlora_r: 8\nstages:\n  2: {epochs: 2, learning_rate: 5e-5}\n"
    )
    assert load_config(path, 1).learning_rate == 1e-4
    s2 = load_config(path, 2)
    assert (s2.learning_rate, s2.epochs, s2.lora_r) == (5e-5, 2.0, 8)
    assert load_config(path, 2, {"learning_rate": 3e-4, "epochs": None}).learning_rate == 3e-4


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("lora_rank: 8\n", r"bad.yaml:lora_rank: unknown key \(did you mean 'lora_r'\?\)"),
        ("lora_r: eight\n", r"bad.yaml:lora_r: expected an integer \('eight'\)"),
        ("replay_share: 1.5\n", r"bad.yaml:replay_share: must be in \[0, 1\) \(1.5\)"),
        ("method: adapters\n", r"bad.yaml:method: must be one of .* \('adapters'\)"),
        ("lr_scheduler: cosine_decay\n", r"bad.yaml:lr_scheduler: .* \('cosine_decay'\)"),
        ("prefix_grad: false\n", r"bad.yaml:prefix_grad: must be true without share_prefix"),
        ("stages: {4: {epochs: 1}}\n", "bad.yaml:stages.4: expected stage 1, 2 or 3"),
        ("stages: {2: {lora_r: 0}}\n", r"bad.yaml:stages.2.lora_r: must be > 0 \(0\)"),
        ("- a list\n", "top level must be a mapping"),
        ("a: [\n", "bad.yaml:2: invalid YAML"),
    ],
)
def test_yaml_errors_name_file_field_and_value(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match) as err:
        load_config(path, 1)
    assert str(path) in str(err.value)


def test_saved_config_loads_back(tmp_path: Path) -> None:
    cfg = resolve_auto(TrainConfig(model="tiny-random", lora_r=4), CPU)
    path = tmp_path / "config.yaml"
    path.write_text(dump_yaml(cfg))
    assert load_config(path, 1) == cfg


def test_qlora_needs_a_gpu() -> None:
    with pytest.raises(ConfigError, match="QLoRA needs a CUDA GPU"):
        resolve_auto(TrainConfig(method="qlora"), CPU)


def test_cpu_auto_keeps_micro_batches_small() -> None:
    c = resolve_auto(TrainConfig(max_length=1024), CPU)
    assert c.batch_size * c.max_length <= 2048 and c.batch_size * c.grad_accum >= 16
    assert not c.gradient_checkpointing and not c.packing and c.compact_lm_head
    assert c.bf16 is False and c.attn_implementation == "sdpa" and not c.use_liger_kernel


def test_gpu_auto_turns_on_the_fast_paths() -> None:
    c = resolve_auto(TrainConfig(), GPU)
    assert c.bf16 and c.gradient_checkpointing and c.packing and c.use_liger_kernel
    assert c.attn_implementation == "flash_attention_2" and not c.compact_lm_head
    explicit = resolve_auto(TrainConfig(batch_size=3, grad_accum=5, bf16=False), GPU)
    assert (explicit.batch_size, explicit.grad_accum, explicit.bf16) == (3, 5, False)


def test_lm_head_in_modules_to_save_warns(caplog: pytest.LogCaptureFixture) -> None:
    from toolsft.train.build import lora_config

    cfg = TrainConfig(modules_to_save=["lm_head"])
    assert serve_requires_merge(cfg)
    with caplog.at_level("WARNING"):
        lora_config(cfg)
    assert "toolsft export --merge" in caplog.text


def test_sft_config_reflects_the_plan(tmp_path: Path) -> None:
    from toolsft.train.build import sft_config

    cfg = resolve_auto(TrainConfig(save_steps=7, early_stopping_patience=2), CPU)
    args = sft_config(cfg, CPU, tmp_path, has_val=True)
    assert args.lr_scheduler_type == "cosine" and args.warmup_steps == 0.1
    assert args.save_steps == 7 and args.eval_steps == 7 and args.load_best_model_at_end
    assert args.max_grad_norm == 1.0 and args.weight_decay == 0.01 and args.use_cpu
    assert not sft_config(cfg, CPU, tmp_path, has_val=False).load_best_model_at_end
