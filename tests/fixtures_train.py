"""Small staged datasets in the exact row format `toolsft gen` writes, for training tests.

Rows: OpenAI chat `messages` (assistant `tool_calls` with JSON-string `arguments`, `role: tool`
results), `tools` and `meta` as JSON strings, `meta.expected` as `Expected.to_json()`.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from toolsft.types import SPLITS, Expected, ToolCall, ToolSpec, dumps

TOOLS = (
    ToolSpec(
        "query_order",
        "Look up an order's status by order number.",
        {
            "type": "object",
            "properties": {"order_no": {"type": "string"}},
            "required": ["order_no"],
        },
    ),
    ToolSpec(
        "track_package",
        "Track a shipment by tracking number.",
        {
            "type": "object",
            "properties": {
                "tracking_no": {"type": "string"},
                "carrier": {"type": "string", "enum": ["sf", "ems", "ups"]},
            },
            "required": ["tracking_no"],
        },
    ),
    ToolSpec(
        "search_product",
        "Search products by keyword and price cap.",
        {
            "type": "object",
            "properties": {
                "keyword": {"type": "string"},
                "max_price": {"type": "number"},
                "in_stock": {"type": "boolean"},
            },
            "required": ["keyword"],
        },
    ),
)
SYSTEM = {
    "en": "You are a shop assistant. Today is 2025-03-01.",
    "zh": "你是商城客服助手。今天是2025-03-01。",
}
WORDS = ["phone", "laptop", "耳机", "kettle", "desk lamp", "背包"]


def _call(name: str, args: dict[str, Any], i: int = 0) -> dict[str, Any]:
    return {
        "id": f"call_{i}",
        "type": "function",
        "function": {"name": name, "arguments": dumps(args)},
    }


def _request(rng: random.Random, lang: str) -> tuple[str, ToolCall, dict[str, Any]]:
    kind = rng.randrange(3)
    if kind == 0:
        no = f"A{rng.randrange(10000, 99999)}"
        text = f"Where is my order {no}?" if lang == "en" else f"帮我查一下订单{no}的状态"
        return (
            text,
            ToolCall("query_order", {"order_no": no}),
            {"status": "shipped", "order_no": no},
        )
    if kind == 1:
        no = f"SF{rng.randrange(10**8, 10**9)}"
        text = f"Track package {no} with sf" if lang == "en" else f"查一下顺丰快递{no}"
        return (
            text,
            ToolCall("track_package", {"tracking_no": no, "carrier": "sf"}),
            {"location": "Shanghai", "eta": "2025-03-03"},
        )
    word, price = rng.choice(WORDS), rng.choice([99, 199.5, 500])
    text = f"Find a {word} under {price} yuan" if lang == "en" else f"找一个{price}元以内的{word}"
    return (
        text,
        ToolCall("search_product", {"keyword": word, "max_price": price, "in_stock": True}),
        {"items": [{"name": word, "price": price}]},
    )


def make_row(stage: int, split: str, i: int, rng: random.Random) -> dict[str, Any]:
    lang = rng.choice(["en", "zh"])
    msgs: list[dict[str, Any]] = [{"role": "system", "content": SYSTEM[lang]}]
    text, call, result = _request(rng, lang)
    irrelevant = stage == 1 and i % 5 == 4
    if irrelevant:
        msgs.append({"role": "user", "content": "Tell me a joke about cats."})
        msgs.append({"role": "assistant", "content": "Sorry, I can only help with shop orders."})
        expected = Expected(calls=())
    else:
        msgs.append({"role": "user", "content": text})
        msgs.append(
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [_call(call.name, dict(call.arguments))],
            }
        )
        expected = Expected(calls=(call,))
    if stage == 3 and not irrelevant:
        msgs.append(
            {
                "role": "tool",
                "tool_call_id": "call_0",
                "name": call.name,
                "content": json.dumps(result, ensure_ascii=False),
            }
        )
        answer = f"Here is what I found: {json.dumps(result, ensure_ascii=False)}"
        msgs.append({"role": "assistant", "content": answer})
        expected = Expected(calls=(), facts=(), answer=answer)
    meta = {
        "id": f"s{stage}-{split}-{i:04d}",
        "stage": stage,
        "split": split,
        "lang": lang,
        "kind": "irrelevant" if irrelevant else "call",
        "expected": expected.to_json(),
        "prompt_len": len(msgs) - 1,
    }
    return {"messages": msgs, "tools": dumps([t.to_openai() for t in TOOLS]), "meta": dumps(meta)}


def make_dataset(
    root: Path, n_train: int = 24, n_val: int = 6, n_test: int = 4, seed: int = 0
) -> Path:
    """Write `<root>/stage{1,2,3}/{train,val,test}.jsonl` and `manifest.json`; return root."""
    counts = {"train": n_train, "val": n_val, "test": n_test}
    for stage in (1, 2, 3):
        for split in SPLITS:
            rng = random.Random(f"{seed}-{stage}-{split}")
            rows = [make_row(stage, split, i, rng) for i in range(counts[split])]
            path = root / f"stage{stage}" / f"{split}.jsonl"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(
                "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
            )
    from toolsft.manifest import write_manifest

    manifest = {"seed": seed, "suite_hash": "fixture-suite-hash", "toolsft_version": "test"}
    write_manifest(root, manifest)  # every file's sha256, as `toolsft gen` writes it
    return root


# --- pytest fixtures (import them into a test module to use them) ---------------------------

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A TOOLSFT_HOME with `tiny-random` built (once per session: the marker makes it idempotent)."""
    from toolsft.models import resolve_model

    home = tmp_path_factory.getbasetemp() / "toolsft-home"
    resolve_model("tiny-random", home)
    return home


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.getbasetemp() / "train-data"
    if not (root / "manifest.json").is_file():
        make_dataset(root)
    return root


def tiny_config(**kw: Any) -> Any:
    """Few, small, deterministic steps on tiny-random: the default test run must stay fast.

    One thread: a 2-layer model gains nothing from two, and on a busy machine OpenMP's
    spin-waiting makes two threads 30x slower.
    """
    from toolsft.train.config import TrainConfig

    base = {
        "model": "tiny-random",
        "max_steps": 4,
        "save_steps": 2,
        "batch_size": 2,
        "grad_accum": 1,
        "learning_rate": 1e-3,
        "max_val_rows": 4,
        "bf16": False,
        "early_stopping_patience": 0,
        "num_threads": 1,
    }
    return TrainConfig(**{**base, **kw})
