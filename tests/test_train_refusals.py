"""Every kernel, precision and method option either runs right on the device or is refused
with one line naming the field and the value (`resolve_auto`, `TrainConfig.validate`, the CLI)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import fixtures_train
import pytest
from click.testing import CliRunner
from fixtures_train import tiny_config

from toolsft.train.config import ConfigError, TrainConfig
from toolsft.train.device import Device, resolve_auto

tiny_home = fixtures_train.tiny_home
tiny_data = fixtures_train.tiny_data

CPU = Device("cpu", bf16_ok=False, flash_attn=False, liger=False, name="cpu")
CPU_BF16 = Device("cpu", bf16_ok=True, flash_attn=False, liger=False, name="cpu")
GPU = Device("cuda", bf16_ok=True, flash_attn=True, liger=False, name="test gpu")
OLD_GPU = Device("cuda", bf16_ok=False, flash_attn=False, liger=False, name="Tesla T4")


def _refused(cfg: TrainConfig, device: Device, where: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        resolve_auto(cfg, device)
    err = info.value
    assert err.where == where
    assert err.value == getattr(cfg, where)
    assert str(err).startswith(f"{where}: ") and "\n" not in str(err)
    assert str(err).endswith(f"({err.value!r})")
    return err


# --- attention kernels x packed sequences -----------------------------------------------------


def _pack_logit_error(home: Path, attn: str) -> float:
    """Largest gap between a shared-prefix pack's labelled logits and each row run alone."""
    import torch
    from transformers import AutoModelForCausalLM

    from toolsft.models import resolve_model
    from toolsft.train.packing import IGNORE, PackCollator, pack_rows, segment_mask

    model = AutoModelForCausalLM.from_pretrained(
        resolve_model("tiny-random", home), dtype=torch.float32, attn_implementation=attn
    ).eval()
    rng = random.Random(0)
    prefix = [rng.randrange(10, 1000) for _ in range(30)]
    rows = []
    for n in (3, 6, 2):
        tail = [rng.randrange(10, 1000) for _ in range(n)]
        answer = [rng.randrange(10, 1000)] * 4
        rows.append((prefix + tail + answer, [0] * (30 + n) + [1] * 4))
    packs = pack_rows([r[0] for r in rows], [r[1] for r in rows], max_length=512)
    keys = ("input_ids", "labels", "position_ids", "segments")
    batch = PackCollator(pad_token_id=0)([{k: getattr(packs, k)[0] for k in keys}])
    with torch.no_grad():
        packed = model(
            input_ids=batch["input_ids"],
            position_ids=batch["position_ids"],
            attention_mask=segment_mask(batch["segments"]),
        ).logits[0]
        got = packed[:-1][batch["labels"][0][1:] != IGNORE]
        want = torch.cat(
            [
                model(input_ids=torch.tensor([rows[k][0]])).logits[0][:-1][
                    torch.tensor(rows[k][1][1:]) == 1
                ]
                for k in packs.rows[0]
            ]
        )
    return float((got - want).abs().max())


def test_eager_attention_gets_shared_prefix_packs_wrong_and_sdpa_right(tiny_home: Path) -> None:
    """Why eager is refused with share_prefix: it adds the boolean 4-D mask to the scores
    instead of masking with it, so rows see each other; sdpa gives each row its own logits."""
    assert _pack_logit_error(tiny_home, "sdpa") < 1e-4
    assert _pack_logit_error(tiny_home, "eager") > 1e-2


@pytest.mark.parametrize("device", [CPU, GPU])
@pytest.mark.parametrize("attn", ["eager", "flash_attention_2"])
def test_share_prefix_runs_on_sdpa_only(device: Device, attn: str) -> None:
    err = _refused(
        tiny_config(share_prefix=True, attn_implementation=attn), device, "attn_implementation"
    )
    assert "sdpa" in str(err)
    assert resolve_auto(tiny_config(share_prefix=True), device).attn_implementation == "sdpa"


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_packing_runs_on_flash_attention_only(attn: str) -> None:
    _refused(tiny_config(packing=True, attn_implementation=attn), GPU, "attn_implementation")
    # Auto packing follows the kernel: a GPU told to use sdpa pads instead of packing.
    cfg = resolve_auto(tiny_config(attn_implementation=attn), GPU)
    assert (cfg.packing, cfg.attn_implementation) == (False, attn)
    packed = resolve_auto(tiny_config(), GPU)
    assert (packed.packing, packed.attn_implementation) == (True, "flash_attention_2")


def test_packing_without_flash_attention_falls_back_to_padding(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level("WARNING"):
        cfg = resolve_auto(tiny_config(packing=True), CPU)
    assert cfg.packing is False and cfg.attn_implementation == "sdpa"
    assert "falls back to padded batches" in caplog.text


# --- gradient checkpointing x a detached prefix -----------------------------------------------


@pytest.mark.parametrize("device", [CPU, GPU])
def test_checkpointing_with_a_detached_prefix_is_refused(device: Device) -> None:
    cfg = tiny_config(share_prefix=True, prefix_grad=False, gradient_checkpointing=True)
    _refused(cfg, device, "gradient_checkpointing")
    auto = resolve_auto(tiny_config(share_prefix=True, prefix_grad=False), device)
    assert auto.gradient_checkpointing is False
    assert resolve_auto(tiny_config(share_prefix=True), GPU).gradient_checkpointing is True


def test_checkpointed_layers_drop_the_detached_prefix_cache(tiny_home: Path) -> None:
    """Why the pair is refused: under gradient checkpointing the layers drop the prefix's
    cache, so the rows' 4-D mask no longer fits their keys."""
    import torch
    from transformers import AutoModelForCausalLM

    from toolsft.models import resolve_model
    from toolsft.train.packing import segment_mask
    from toolsft.train.trainer import hidden_with_detached_prefix

    model = AutoModelForCausalLM.from_pretrained(resolve_model("tiny-random", tiny_home))
    seg = torch.tensor([[0] * 6 + [1] * 3 + [2] * 2])
    kwargs = {
        "input_ids": torch.arange(10, 21)[None],
        "position_ids": torch.tensor([list(range(9)) + [6, 7]]),
        "attention_mask": segment_mask(seg),
    }
    model.train()
    hidden_with_detached_prefix(model.model, seg, **kwargs)  # without checkpointing: runs
    model.gradient_checkpointing_enable()
    with pytest.raises(RuntimeError, match="size of tensor"):
        hidden_with_detached_prefix(model.model, seg, **kwargs)


# --- precision x device -----------------------------------------------------------------------


@pytest.mark.parametrize(("device", "word"), [(CPU, "native bf16"), (OLD_GPU, "Tesla T4")])
def test_bf16_where_the_device_has_none_is_refused(device: Device, word: str) -> None:
    err = _refused(tiny_config(bf16=True), device, "bf16")
    assert word in str(err)
    assert resolve_auto(tiny_config(bf16=None), device).bf16 is False
    assert resolve_auto(tiny_config(bf16=False), device).bf16 is False


@pytest.mark.parametrize("device", [CPU_BF16, GPU])
def test_bf16_where_the_device_has_it_runs(device: Device) -> None:
    assert resolve_auto(tiny_config(bf16=True), device).bf16 is True
    assert resolve_auto(tiny_config(bf16=None), device).bf16 is True


def test_the_config_has_no_fp16_to_refuse() -> None:
    """bf16 is the only reduced precision (sft_config passes fp16=False): nothing to check."""
    assert "fp16" not in TrainConfig.__dataclass_fields__


# --- QLoRA x bitsandbytes and CUDA ------------------------------------------------------------


def test_qlora_needs_cuda_and_bitsandbytes(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    err = _refused(tiny_config(method="qlora"), CPU, "method")
    assert "CUDA GPU" in str(err)
    real = importlib.util.find_spec

    def without_bnb(name: str, *args: Any) -> Any:
        return None if name == "bitsandbytes" else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", without_bnb)
    assert "bitsandbytes" in str(_refused(tiny_config(method="qlora"), GPU, "method"))
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object())
    assert resolve_auto(tiny_config(method="qlora"), GPU).method == "qlora"


# --- the same rules where they are static: the config file ------------------------------------


@pytest.mark.parametrize(
    ("yaml", "where", "value"),
    [
        ("share_prefix: true\nattn_implementation: eager\n", "attn_implementation", "'eager'"),
        ("packing: true\nattn_implementation: sdpa\n", "attn_implementation", "'sdpa'"),
        (
            "share_prefix: true\nprefix_grad: false\ngradient_checkpointing: true\n",
            "gradient_checkpointing",
            "True",
        ),
    ],
)
def test_static_refusals_name_the_file(tmp_path: Path, yaml: str, where: str, value: str) -> None:
    from toolsft.train.config import load_config

    path = tmp_path / "train.yaml"
    path.write_text(yaml)
    with pytest.raises(ConfigError, match=rf"train.yaml:{where}: must be .* \({value}\)$"):
        load_config(path, 1)


# --- through the CLI: exit 2 with the one line ------------------------------------------------


def _train(tiny_data: Path, tmp_path: Path, yaml: str, env: dict[str, str]) -> Any:
    from toolsft.cli.main import cli

    cfg = tmp_path / "train.yaml"
    cfg.write_text(yaml)
    args = ["train", "--stage", "1", "--data", str(tiny_data), "--out", str(tmp_path / "run")]
    args += ["--model", "tiny-random", "--config", str(cfg), "--max-steps", "1"]
    return CliRunner().invoke(cli, args, env=env)


def _one_line(res: Any) -> str:
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    lines = [line for line in res.output.splitlines() if line.startswith("Error: ")]
    assert len(lines) == 1, res.output
    return lines[0]


def test_cli_refuses_eager_with_shared_prefix_packs(
    tiny_home: Path, tiny_data: Path, tmp_path: Path
) -> None:
    res = _train(
        tiny_data,
        tmp_path,
        "share_prefix: true\nattn_implementation: eager\n",
        {"TOOLSFT_HOME": str(tiny_home)},
    )
    line = _one_line(res)
    assert line.startswith(f"Error: {tmp_path / 'train.yaml'}:attn_implementation: must be sdpa")
    assert line.endswith("('eager')")
    assert not (tmp_path / "run" / "stage1").exists()


def test_cli_refuses_bf16_on_a_cpu_without_it(
    tiny_home: Path, tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import toolsft.train.device as device_mod

    monkeypatch.setattr(device_mod, "detect", lambda: CPU)
    res = _train(tiny_data, tmp_path, "bf16: true\n", {"TOOLSFT_HOME": str(tiny_home)})
    line = _one_line(res)
    assert line.startswith("Error: bf16: must be false on this device"), line
    assert line.endswith("(True)")
