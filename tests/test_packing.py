"""Shared-prefix packing: layout, exact equivalence with separate rows, training, replay groups."""

from __future__ import annotations

import json
import random
from pathlib import Path

import fixtures_train
import pytest
from fixtures_train import tiny_config

from toolsft.train.data import Row, mix_replay
from toolsft.train.packing import IGNORE, PackCollator, pack_rows, segment_mask

tiny_data = fixtures_train.tiny_data
tiny_home = fixtures_train.tiny_home


def _row(prefix: list[int], prompt_tail: list[int], answer: list[int]) -> tuple[list, list]:
    ids = prefix + prompt_tail + answer
    return ids, [0] * (len(prefix) + len(prompt_tail)) + [1] * len(answer)


def test_rows_with_a_common_prompt_share_one_prefix() -> None:
    prefix = list(range(100, 140))
    rows = [
        _row(prefix, [7, 8], [50, 51, 52]),
        _row([900, 901, 902], [5], [60, 61]),  # shares nothing
        _row(prefix, [9], [53, 54]),
    ]
    packs = pack_rows([r[0] for r in rows], [r[1] for r in rows], max_length=512)
    assert len(packs.input_ids) == 2
    shared = next(i for i, members in enumerate(packs.rows) if len(members) == 2)
    ids, labels = packs.input_ids[shared], packs.labels[shared]
    segments, positions = packs.segments[shared], packs.position_ids[shared]
    assert ids[:40] == prefix and segments[:40] == [0] * 40
    # Every suffix starts unlabelled and continues the prefix's positions.
    for seg in (1, 2):
        idx = [k for k, s in enumerate(segments) if s == seg]
        assert labels[idx[0]] == IGNORE
        assert positions[idx[0]] == 40
    assert sorted(t for t in labels if t != IGNORE) == [50, 51, 52, 53, 54]
    assert packs.tokens < sum(len(r[0]) for r in rows)


def test_a_pack_never_exceeds_max_length() -> None:
    prefix = list(range(100, 160))
    rows = [_row(prefix, [k], [200 + k] * 5) for k in range(10)]
    packs = pack_rows([r[0] for r in rows], [r[1] for r in rows], max_length=100)
    assert all(len(p) <= 100 for p in packs.input_ids)
    assert sum(len(m) for m in packs.rows) == 10


def test_mask_keeps_suffixes_apart() -> None:
    import torch

    seg = torch.tensor([[0, 0, 1, 1, 2, 2, -1]])
    m = segment_mask(seg)[0, 0]
    assert m[3, :4].tolist() == [True, True, True, True]
    assert m[4, 2:4].tolist() == [False, False]  # row 2 never sees row 1
    assert m[5, :].tolist() == [True, True, False, False, True, True, False]
    assert m[6].tolist() == [False] * 6 + [True]  # padding sees only itself


def test_packed_logits_equal_separate_rows(tiny_home: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    from toolsft.models import resolve_model

    model = AutoModelForCausalLM.from_pretrained(
        resolve_model("tiny-random", tiny_home), torch_dtype=torch.float32
    ).eval()
    rng = random.Random(0)
    prefix = [rng.randrange(10, 1000) for _ in range(30)]
    rows = [
        _row(prefix, [rng.randrange(10, 1000) for _ in range(n)], [rng.randrange(10, 1000)] * 4)
        for n in (3, 6, 2)
    ]
    packs = pack_rows([r[0] for r in rows], [r[1] for r in rows], max_length=512)
    assert len(packs.input_ids) == 1
    batch = PackCollator(pad_token_id=0)(
        [
            {
                "input_ids": packs.input_ids[0],
                "labels": packs.labels[0],
                "position_ids": packs.position_ids[0],
                "segments": packs.segments[0],
            }
        ]
    )
    with torch.no_grad():
        packed = model(
            input_ids=batch["input_ids"],
            position_ids=batch["position_ids"],
            attention_mask=segment_mask(batch["segments"]),
        ).logits[0]
        labels = batch["labels"][0]
        got = packed[:-1][labels[1:] != IGNORE]
        want = []
        for k in packs.rows[0]:  # pack order
            ids, mask = rows[k]
            logits = model(input_ids=torch.tensor([ids])).logits[0]
            want.append(logits[:-1][torch.tensor(mask[1:]) == 1])
    torch.testing.assert_close(got, torch.cat(want), atol=1e-4, rtol=1e-4)


def test_detached_prefix_gives_the_same_hidden_states(tiny_home: Path) -> None:
    """prefix_grad=False: the prefix runs without gradient as a cache; every suffix position
    gets the hidden state of one pass over the whole pack, in a batch of packs whose prefixes
    differ in length, and gradient still reaches the weights through the suffixes."""
    import torch
    from transformers import AutoModelForCausalLM

    from toolsft.models import resolve_model
    from toolsft.train.trainer import hidden_with_detached_prefix

    model = AutoModelForCausalLM.from_pretrained(
        resolve_model("tiny-random", tiny_home), torch_dtype=torch.float32
    )
    rng = random.Random(1)
    features = []
    for plen in (20, 33):
        prefix = [rng.randrange(10, 1000) for _ in range(plen)]
        rows = [
            _row(prefix, [rng.randrange(10, 1000) for _ in range(n)], [rng.randrange(10, 1000)] * 3)
            for n in (2, 5)
        ]
        packs = pack_rows([r[0] for r in rows], [r[1] for r in rows], max_length=512)
        assert len(packs.input_ids) == 1
        features.append(
            {k: getattr(packs, k)[0] for k in ("input_ids", "labels", "position_ids", "segments")}
        )
    batch = PackCollator(pad_token_id=0)(features)
    seg = batch["segments"]
    kwargs = {
        "input_ids": batch["input_ids"],
        "position_ids": batch["position_ids"],
        "attention_mask": segment_mask(seg),
    }
    with torch.no_grad():
        want = model.model(**kwargs).last_hidden_state
    got = hidden_with_detached_prefix(model.model, seg, **kwargs)
    rows = seg > 0
    torch.testing.assert_close(got[rows], want[rows], atol=1e-4, rtol=1e-4)
    assert not got[seg == 0].any()  # prefix positions carry no label and come back as zeros
    got[rows].pow(2).sum().backward()
    assert model.model.layers[0].self_attn.q_proj.weight.grad.abs().sum() > 0
    alone = {k: v[:1, seg[0] > 0] for k, v in kwargs.items() if k != "attention_mask"}
    alone_seg = seg[:1, seg[0] > 0]
    alone["attention_mask"] = segment_mask(alone_seg)
    with torch.no_grad():  # a pack without a shared prefix is one plain pass
        torch.testing.assert_close(
            hidden_with_detached_prefix(model.model, alone_seg, **alone),
            model.model(**alone).last_hidden_state,
        )


def test_training_with_shared_prefix_packs(
    tiny_home: Path, tiny_data: Path, tmp_path: Path
) -> None:
    from toolsft.train.runner import train_stage

    res = train_stage(
        1, tiny_data, tmp_path, tiny_config(share_prefix=True, batch_size=1), tiny_home
    )
    data = json.loads((res.dir / "data.json").read_text())
    assert data["train_packs"] < sum(data["train_rows"].values())
    assert data["train_packed_tokens"] < data["train_tokens"]
    assert res.metrics["global_step"] == 4
    assert res.metrics["train_loss"] > 0


def test_training_without_gradient_through_the_prefix(
    tiny_home: Path, tiny_data: Path, tmp_path: Path
) -> None:
    """The same first-step loss as with gradient through the prefix (the forward is the
    same), and training still moves the adapter."""
    from toolsft.train.runner import train_stage

    losses = {}
    for grad in (True, False):
        cfg = tiny_config(
            share_prefix=True, batch_size=1, prefix_grad=grad, warmup_ratio=0.0, max_val_rows=0
        )
        res = train_stage(1, tiny_data, tmp_path / str(grad), cfg, tiny_home)
        losses[grad] = [h["loss"] for h in res.metrics["log_history"] if "loss" in h]
    assert losses[False][0] == pytest.approx(losses[True][0], rel=1e-3)
    assert losses[False] != losses[True][:1] * len(losses[False])


@pytest.mark.parametrize("bf16", [True, False])
def test_compact_loss_runs_the_backbone_under_autocast(
    tiny_home: Path, tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bf16: bool
) -> None:
    """The compact loss calls the backbone directly, past accelerate's autocast wrapper on the
    outer forward: it must enter bf16 autocast itself (it once ran CPU steps in fp32)."""
    import torch
    from transformers.models.llama.modeling_llama import LlamaModel

    from toolsft.train.runner import train_stage

    seen: list[tuple[bool, torch.dtype]] = []
    forward = LlamaModel.forward

    def spy(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append((torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")))
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(LlamaModel, "forward", spy)
    import toolsft.train.device as device_mod

    # bf16 is refused on CPUs without native bf16; the autocast path is the same on any CPU.
    cpu = device_mod.Device("cpu", bf16_ok=True, flash_attn=False, liger=False, name="cpu")
    monkeypatch.setattr(device_mod, "detect", lambda: cpu)
    cfg = tiny_config(share_prefix=True, batch_size=1, bf16=bf16, max_steps=1, max_val_rows=0)
    train_stage(1, tiny_data, tmp_path, cfg, tiny_home)
    assert seen, "the backbone never ran"
    assert all(on == bf16 for on, _ in seen)
    if bf16:
        assert {dtype for _, dtype in seen} == {torch.bfloat16}


def _rows(system: str, n: int, stage: int) -> list[Row]:
    tools = [{"type": "function", "function": {"name": "t", "parameters": {}}}]
    return [
        Row(
            [{"role": "system", "content": system}, {"role": "user", "content": f"q{i}"}],
            tools,
            {"id": f"{system}-{i}"},
            f"f:{i}",
            stage,
        )
        for i in range(n)
    ]


def test_replay_by_prompt_keeps_groups_together() -> None:
    earlier = [r for g in range(6) for r in _rows(f"sys{g}", 8, 1)]
    current = _rows("now", 32, 2)
    mixed = mix_replay(current, earlier, share=0.2, seed=3, by_prompt=True)
    replay = [r for r in mixed if r.stage == 1]
    assert len(replay) == 8
    assert len({r.messages[0]["content"] for r in replay}) == 1


@pytest.mark.parametrize("group", [1, 4])
def test_gen_groups_share_system_and_tools(group: int) -> None:
    from toolsft.gen.pipeline import GenConfig, generate
    from toolsft.schema.suite import load_suite

    suite = load_suite(Path(__file__).parent.parent / "tool_schemas" / "commerce")
    cfg = GenConfig(per_stage=16, stages=(1, 2), show_all=True, group=group)
    rows = generate(suite, cfg).rows[(2, "train")]
    names = {t.name for t in suite.tools}
    assert all({t.name for t in r.tools} == names for r in rows)
    heads = [(r.messages[0]["content"], tuple(t.name for t in r.tools)) for r in rows]
    first_group = heads[:group]
    assert len(set(first_group)) == 1
    if group > 1:  # groups differ from each other (date, language, order)
        assert len(set(heads)) == len(rows) // group
    again = generate(suite, cfg).rows[(2, "train")]
    assert [r.meta for r in again] == [r.meta for r in rows]


def test_gen_suite_order_lists_every_tool_in_suite_order() -> None:
    """--suite-order: every row of every split shows the suite's tools in the suite's order
    (as one deployment does), while groups still differ in date and language."""
    from toolsft.gen.pipeline import GenConfig, generate
    from toolsft.schema.suite import load_suite

    suite = load_suite(Path(__file__).parent.parent / "tool_schemas" / "commerce")
    cfg = GenConfig(per_stage=16, stages=(1, 3), show_all=True, suite_order=True, group=4)
    result = generate(suite, cfg)
    order = tuple(t.name for t in suite.tools)
    for rows in result.rows.values():
        assert {tuple(t.name for t in r.tools) for r in rows} == {order}
    systems = {r.messages[0]["content"] for r in result.rows[(1, "train")]}
    assert len(systems) > 1
    shuffled = generate(suite, GenConfig(per_stage=16, stages=(1,), show_all=True, group=4))
    assert len({tuple(t.name for t in r.tools) for r in shuffled.rows[(1, "train")]}) > 1


def test_pack_stage_warns_when_rows_share_nothing(caplog: pytest.LogCaptureFixture) -> None:
    from toolsft.train.packing import pack_stage
    from toolsft.train.tokenize import Encoded

    rows = [_row([k * 10 + j for j in range(5)], [1], [2, 3]) for k in range(4)]
    enc = Encoded([r[0] for r in rows], [r[1] for r in rows], _rows("s", 4, 1))
    with caplog.at_level("WARNING"):
        train, _ = pack_stage(enc, Encoded(), max_length=64)
    assert len(train.input_ids) == 4
    assert "few rows share a prompt" in caplog.text
