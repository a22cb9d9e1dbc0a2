"""Training speed work that must not change what trains: batched encoding, packing shortcuts,
metrics kept on the device until the trainer logs, and the GPU's automatic choices."""

from __future__ import annotations

import random
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import fixtures_train
import pytest
from click.testing import CliRunner
from conftest import REPO
from fixtures_train import tiny_config

from toolsft.chat.template import CHAT_TEMPLATE
from toolsft.train.config import TrainConfig
from toolsft.train.device import Device, resolve_auto

tiny_data = fixtures_train.tiny_data
tiny_home = fixtures_train.tiny_home

CPU = Device("cpu", bf16_ok=False, flash_attn=False, liger=False, name="cpu")
GPU = Device("cuda", bf16_ok=True, flash_attn=True, liger=True, name="fake-gpu")
GB = 2**30


# --- encoding: rendered once, tokenized in batches, same output --------------------------------


@pytest.fixture(scope="module")
def grouped_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Commerce rows as the GPU budget generates them: every tool shown, groups of 4."""
    from toolsft.cli.main import cli

    out = tmp_path_factory.mktemp("grouped") / "data"
    res = CliRunner().invoke(cli, [
        "gen", "--suite", str(REPO / "tool_schemas" / "commerce"), "--out", str(out),
        "--per-stage", "24", "--show-all", "--suite-order", "--group", "4", "--seed", "3",
    ])  # fmt: skip
    assert res.exit_code == 0, res.output
    return out


def _tokenizer(home: Path) -> Any:
    from toolsft.train.runner import _load_tokenizer

    return _load_tokenizer(home / "models" / "tiny-random")


def _reference(tok: Any, rows: list[Any], weight: float) -> list[tuple[Any, ...]]:
    """Row by row through `apply_chat_template`, text rendered again for the weights."""
    from toolsft.train.tokenize import encode_row, render_row
    from toolsft.train.weights import row_weights

    out = []
    for row in rows:
        ids, mask = encode_row(tok, row, CHAT_TEMPLATE)
        w = row_weights(tok, render_row(tok, row, CHAT_TEMPLATE), ids, mask, weight)
        out.append((ids, mask, w if weight != 1 else None))
    return out


def _stage_rows(data: Path, stage: int) -> list[Any]:
    from toolsft.train.data import read_rows, stage_file

    return read_rows(stage_file(data, stage, "train"), stage)


@pytest.mark.parametrize("stage", [1, 2, 3])
def test_batched_encoding_equals_row_by_row(
    tiny_home: Path, grouped_data: Path, tiny_data: Path, stage: int, monkeypatch: Any
) -> None:
    from toolsft.train import tokenize as data_mod

    tok = _tokenizer(tiny_home)
    rows = _stage_rows(grouped_data, stage) + _stage_rows(tiny_data, stage)
    monkeypatch.setattr(data_mod, "TOKENIZE_BATCH", 7)  # rows span several batches
    for weight in (1.0, 8.0):
        fast = list(data_mod.tokenize_rows(tok, rows, CHAT_TEMPLATE, weight))
        assert fast == _reference(tok, rows, weight)
    weighted = [w for _, _, w in data_mod.tokenize_rows(tok, rows, CHAT_TEMPLATE, 8.0)]
    assert any(8.0 in w for w in weighted if w)  # the weights are really there


def test_encode_keeps_its_output_and_drops(tiny_home: Path, grouped_data: Path) -> None:
    from toolsft.train.tokenize import encode, encode_row

    tok = _tokenizer(tiny_home)
    rows = _stage_rows(grouped_data, 2)
    lengths = sorted(len(encode_row(tok, r, CHAT_TEMPLATE)[0]) for r in rows)
    limit = lengths[len(lengths) // 2]
    enc = encode(tok, rows, CHAT_TEMPLATE, limit, decision_weight=8.0)
    kept = [r for r in rows if len(encode_row(tok, r, CHAT_TEMPLATE)[0]) <= limit]
    assert [r.id for r in enc.rows] == [r.id for r in kept]
    assert enc.input_ids == [encode_row(tok, r, CHAT_TEMPLATE)[0] for r in kept]
    assert enc.assistant_masks == [encode_row(tok, r, CHAT_TEMPLATE)[1] for r in kept]
    assert len(enc.weights) == len(kept) and len(enc.dropped_too_long) == len(rows) - len(kept)


def test_a_slow_tokenizer_takes_the_row_by_row_path(tiny_home: Path, tiny_data: Path) -> None:
    from toolsft.train.tokenize import tokenize_rows

    tok = _tokenizer(tiny_home)

    class Slow:  # no offsets: what a Python (non-"fast") tokenizer offers
        is_fast = False

        def __getattr__(self, name: str) -> Any:
            return getattr(tok, name)

        def __call__(self, *args: Any, **kw: Any) -> Any:
            return tok(*args, **kw)

    rows = _stage_rows(tiny_data, 1)[:6]
    assert list(tokenize_rows(Slow(), rows, CHAT_TEMPLATE, 8.0)) == _reference(tok, rows, 8.0)


def test_packing_shortcuts_match_the_plain_loops() -> None:
    from toolsft.train.packing import _common, _prefix_limit

    rng = random.Random(0)
    for _ in range(300):
        base = [rng.randrange(5) for _ in range(rng.randrange(0, 30))]
        a = base + [rng.randrange(5) for _ in range(rng.randrange(0, 5))]
        b = base[: rng.randrange(0, len(base) + 1)] + [rng.randrange(5) for _ in range(3)]
        limit = rng.randrange(0, 40)
        n = min(len(a), len(b), limit)
        k = next((i for i in range(n) if a[i] != b[i]), n)
        assert _common(a, b, limit) == k
        mask = [rng.random() < 0.3 for _ in range(rng.randrange(0, 12))]
        first = next((i for i, m in enumerate(mask) if m), len(mask))
        assert _prefix_limit(mask) == max(0, first - 1)
        assert _prefix_limit([int(m) for m in mask]) == max(0, first - 1)


# --- metrics: on the device until the trainer logs ---------------------------------------------


def _fake_trainer(world: int = 1) -> Any:
    import torch

    def gather(t: Any) -> Any:  # every rank recorded the same batches
        return torch.cat([t] * world)

    return SimpleNamespace(
        _pending_metrics={},
        _metrics={"train": defaultdict(list), "eval": defaultdict(list)},
        _total_train_tokens=100,
        accelerator=SimpleNamespace(gather=gather),
    )


@pytest.mark.parametrize("world", [1, 2])
def test_record_waits_for_the_log(world: int, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from toolsft.train.trainer import ToolSFTTrainer

    fake = _fake_trainer(world)
    batches = []
    for k in range(3):
        logits = torch.randn(5 + k, 11)
        target = torch.randint(0, 11, (5 + k,))
        real = torch.ones(2, 8 + k, dtype=torch.bool)
        batches.append((logits, target, real))

    def no_sync(*a: Any, **kw: Any) -> Any:
        raise AssertionError("a host sync inside the step")

    with monkeypatch.context() as m:
        for name in ("item", "tolist", "__bool__", "__int__", "__float__"):
            m.setattr(torch.Tensor, name, no_sync)
        for logits, target, real in batches:
            ToolSFTTrainer._record(fake, "train", logits, target, real)
    assert len(fake._pending_metrics["train"]) == 3 and not fake._metrics["train"]
    ToolSFTTrainer._flush_metrics(fake)
    want = [float((lg.argmax(-1) == t).sum()) / t.numel() for lg, t, _ in batches]
    assert fake._metrics["train"]["mean_token_accuracy"] == pytest.approx(want)
    tokens = sum(int(r.sum()) for _, _, r in batches) * world
    assert fake._metrics["train"]["num_tokens"] == [100 + tokens]
    assert fake._pending_metrics["train"] == []


class EagerRecord:
    """The metrics as recorded before: gathered and read back in every step."""

    def _record(self: Any, mode: str, logits: Any, target: Any, real: Any) -> None:
        import torch

        with torch.no_grad():
            n = torch.tensor(target.numel(), device=logits.device)
            tokens = real.sum() if real is not None else torch.zeros_like(n)
            local = torch.stack([(logits.argmax(-1) == target).sum(), n, tokens]).long()[None]
            correct, n, tokens = self.accelerator.gather_for_metrics(local).sum(0).tolist()
        self._metrics[mode]["mean_token_accuracy"].append(correct / n if n else 0.0)
        if mode == "train" and real is not None:
            self._total_train_tokens += tokens
        self._metrics[mode]["num_tokens"] = [self._total_train_tokens]


KEYS = ("loss", "mean_token_accuracy", "num_tokens", "eval_loss", "eval_mean_token_accuracy",
        "eval_num_tokens")  # fmt: skip


@pytest.mark.parametrize("share_prefix", [False, True])
def test_logged_metrics_are_unchanged(
    tiny_home: Path, tiny_data: Path, tmp_path: Path, share_prefix: bool, monkeypatch: Any
) -> None:
    from toolsft.train import trainer as trainer_mod
    from toolsft.train.runner import train_stage

    cfg = tiny_config(
        share_prefix=share_prefix, batch_size=1, grad_accum=2, logging_steps=2, lora_dropout=0.0
    )
    new = train_stage(1, tiny_data, tmp_path / "new", cfg, tiny_home)
    eager = type("Eager", (EagerRecord, trainer_mod.ToolSFTTrainer), {})
    monkeypatch.setattr(trainer_mod, "ToolSFTTrainer", eager)
    old = train_stage(1, tiny_data, tmp_path / "old", cfg, tiny_home)

    def logged(res: Any) -> list[dict[str, Any]]:
        return [{k: h[k] for k in KEYS if k in h} for h in res.metrics["log_history"]]

    assert logged(new) == logged(old)
    history = logged(new)
    assert sum("mean_token_accuracy" in h for h in history) == 2  # steps 2 and 4
    assert sum("eval_mean_token_accuracy" in h for h in history) >= 2
    assert history[-1].get("num_tokens", 0) > 0 or any(h.get("num_tokens") for h in history)


# --- automatic choices on a GPU (fake devices) -------------------------------------------------


def test_fused_adamw_on_cuda_when_optim_is_left_alone() -> None:
    assert resolve_auto(TrainConfig(), GPU).optim == "adamw_torch_fused"
    assert resolve_auto(TrainConfig(), CPU).optim == TrainConfig().optim
    assert resolve_auto(TrainConfig(optim="adamw_torch_8bit"), GPU).optim == "adamw_torch_8bit"


def _tiny_model(home: Path) -> Path:
    return home / "models" / "tiny-random"


def test_checkpointing_off_where_the_stage_fits_without_it(tiny_home: Path) -> None:
    from toolsft.train.memory import estimate, read_shape

    model = _tiny_model(tiny_home)
    cfg = TrainConfig(model="tiny-random", batch_size=2, max_length=4096)
    resolved = resolve_auto(cfg, GPU, model=model, free=1000 * GB)
    assert resolved.gradient_checkpointing is False
    need = estimate(read_shape(model), resolved, gpu=True).total  # type: ignore[arg-type]
    assert resolve_auto(cfg, GPU, model=model, free=need).gradient_checkpointing is False
    assert resolve_auto(cfg, GPU, model=model, free=need - 1).gradient_checkpointing is True


def test_checkpointing_stays_as_asked_or_safe() -> None:
    cfg = TrainConfig(batch_size=2, max_length=4096)
    assert resolve_auto(cfg, GPU).gradient_checkpointing is True  # model unknown: on
    assert resolve_auto(cfg, GPU, model=Path("/nonexistent")).gradient_checkpointing is True
    assert resolve_auto(cfg, CPU, free=1).gradient_checkpointing is False
    on = cfg.replace(gradient_checkpointing=True)
    assert resolve_auto(on, GPU, free=1000 * GB).gradient_checkpointing is True
    detached = cfg.replace(share_prefix=True, prefix_grad=False)
    assert resolve_auto(detached, GPU, free=1).gradient_checkpointing is False


def test_checkpointing_decided_from_the_free_memory_read(
    tiny_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from toolsft.train import memory

    model, cfg = _tiny_model(tiny_home), TrainConfig(batch_size=2, max_length=4096)
    monkeypatch.setattr(memory, "free_bytes", lambda device: 1000 * GB)
    assert resolve_auto(cfg, GPU, model=model).gradient_checkpointing is False
    monkeypatch.setattr(memory, "free_bytes", lambda device: GB // 100)
    assert resolve_auto(cfg, GPU, model=model).gradient_checkpointing is True

    def unreadable(device: Any) -> int:
        raise RuntimeError("no CUDA")

    monkeypatch.setattr(memory, "free_bytes", unreadable)
    assert resolve_auto(cfg, GPU, model=model).gradient_checkpointing is True


def test_liger_follows_the_install() -> None:
    no_liger = Device("cuda", bf16_ok=True, flash_attn=True, liger=False, name="fake")
    assert resolve_auto(TrainConfig(), GPU).use_liger_kernel is True
    assert resolve_auto(TrainConfig(), no_liger).use_liger_kernel is False
    assert resolve_auto(TrainConfig(), CPU).use_liger_kernel is False


@pytest.mark.parametrize("world", [1, 2, 4, 32])
def test_auto_accumulation_counts_every_process(
    world: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    from toolsft.train.device import ROWS_PER_STEP

    for device in (CPU, GPU):
        monkeypatch.setenv("WORLD_SIZE", str(world))
        c = resolve_auto(TrainConfig(max_length=2048), device)
        monkeypatch.delenv("WORLD_SIZE")
        assert c == resolve_auto(TrainConfig(max_length=2048), device, world=world)
        rows = c.batch_size * c.grad_accum * world  # type: ignore[operator]
        assert rows >= ROWS_PER_STEP
        assert c.grad_accum == 1 or rows - c.batch_size * world < ROWS_PER_STEP  # type: ignore[operator]
    explicit = resolve_auto(TrainConfig(batch_size=2, grad_accum=8), CPU, world=world)
    assert explicit.grad_accum == 8
