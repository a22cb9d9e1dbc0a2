"""Eval throughput: the same requests on the vLLM and transformers engines, free and constrained.

Requests are the first turn of the test rows (system prompt, tools, user request), so every
engine and mode sees exactly the same prompts. Each (engine, mode) first runs every prompt with
8 new tokens (not timed), and vLLM's prefix cache is reset before each timed run. Prints requests/s, output tokens/s, TTFT p50 and the vLLM/hf and
constrained/free ratios; `--json` writes the figures.

    .venv/bin/python benchmarks/eval_throughput.py --model tiny-random --rows 20
    .venv/bin/python benchmarks/eval_throughput.py --model smollm2-135m --rows 10 --max-tokens 64

Goals (issue 4): vLLM >= 3x hf on CPU (>= 10x on GPU); constrained costs <= 10% throughput.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def requests_for(suite: Path, data: Path | None, rows: int, seed: int) -> list[Any]:
    from toolsft.engines.base import Request
    from toolsft.eval.data import load_eval_data

    if data is None:
        sys.path.insert(0, str(REPO / "tests"))  # the tests' dataset helper, as they use it
        from helpers import make_dataset

        data = make_dataset(Path(tempfile.mkdtemp(prefix="toolsft-bench-")), suite, per_stage=100)
    examples = load_eval_data(data, "test", limit=rows, seed=seed).examples
    return [
        Request(ex.prompt_messages(), [t.to_openai() for t in ex.tools], f"{i}")
        for i, ex in enumerate(examples)
    ]


def measure(engine: Any, requests: list[Any], decoding: Any) -> dict[str, Any]:
    # Warm-up (not timed): every prompt once with few new tokens, so first-shape costs
    # (torch.compile, oneDNN kernels) land here rather than in whichever mode runs first.
    engine.generate(requests, replace(decoding, max_tokens=min(8, decoding.max_tokens)))
    if hasattr(engine, "reset_cache"):  # no prompt prefix reused from an earlier run
        engine.reset_cache()
    t0 = time.perf_counter()
    gens = engine.generate(requests, decoding)
    wall = time.perf_counter() - t0
    ttft = [g.ttft_s for g in gens if g.ttft_s is not None]
    tokens = sum(g.output_tokens for g in gens)
    return {
        "texts": [g.text for g in gens],
        "requests": len(gens),
        "wall_s": round(wall, 3),
        "requests_per_s": round(len(gens) / wall, 3),
        "output_tokens": tokens,
        "output_tokens_per_s": round(tokens / wall, 1),
        "prompt_tokens_mean": round(statistics.mean(g.prompt_tokens for g in gens), 1),
        "ttft_p50_s": round(statistics.median(ttft), 4) if ttft else None,
    }


def build(name: str, model: Path, args: argparse.Namespace) -> Any:
    from toolsft.engines import make_engine

    if name == "vllm":
        return make_engine(
            "vllm",
            model=model,
            seed=args.seed,
            max_model_len=args.max_model_len,
            kv_cache_gib=args.kv_cache_gib,
            enforce_eager=args.enforce_eager,
        )
    return make_engine("hf", model=model, batch_size=args.batch_size, dtype=args.hf_dtype)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--suite", type=Path, default=REPO / "tool_schemas" / "commerce")
    p.add_argument("--data", type=Path, help="generated data folder (default: a fresh small one)")
    p.add_argument("--model", default="tiny-random")
    p.add_argument("--rows", type=int, default=20, help="test rows per stage")
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--engines", default="vllm,hf")
    p.add_argument("--modes", default="free,constrained")
    p.add_argument("--batch-size", type=int, default=16, help="hf batch size")
    p.add_argument("--hf-dtype", default="auto", help="hf dtype (auto: bf16 where fast)")
    p.add_argument("--max-model-len", type=int, default=4096)
    p.add_argument("--kv-cache-gib", type=float, default=1.0)
    p.add_argument("--enforce-eager", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, help="write the figures here")
    args = p.parse_args()

    from toolsft.engines.base import Decoding
    from toolsft.models import resolve_model

    model = Path(
        resolve_model(
            args.model, Path(os.environ.get("TOOLSFT_HOME", "~/.cache/toolsft")).expanduser()
        )
    )
    requests = requests_for(args.suite, args.data, args.rows, args.seed)
    results: dict[str, dict[str, Any]] = {}
    for name in args.engines.split(","):
        engine = build(name, model, args)
        try:
            for mode in args.modes.split(","):
                dec = Decoding(max_tokens=args.max_tokens, constrained=mode == "constrained")
                results[f"{name}/{mode}"] = r = measure(engine, requests, dec)
                shown = {k: v for k, v in r.items() if k != "texts"}
                print(f"{name:5s} {mode:11s} {json.dumps(shown)}", flush=True)
        finally:
            engine.close()
    report(results, args, len(requests))


def report(results: dict[str, dict[str, Any]], args: argparse.Namespace, n: int) -> None:
    print(
        f"\nmodel {args.model}, {n} requests, max_tokens {args.max_tokens}, {os.cpu_count()} CPUs"
    )
    print(f"{'engine/mode':22s} {'req/s':>8s} {'tok/s':>9s} {'TTFT p50':>9s}")
    for key, r in results.items():
        ttft = "–" if r["ttft_p50_s"] is None else f"{1000 * r['ttft_p50_s']:.0f} ms"
        print(f"{key:22s} {r['requests_per_s']:8.2f} {r['output_tokens_per_s']:9.1f} {ttft:>9s}")
    ratios = {}
    for mode in args.modes.split(","):
        v, h = results.get(f"vllm/{mode}"), results.get(f"hf/{mode}")
        if v and h:
            ratios[f"vllm/hf {mode} tok/s"] = v["output_tokens_per_s"] / h["output_tokens_per_s"]
            ratios[f"vllm/hf {mode} req/s"] = v["requests_per_s"] / h["requests_per_s"]
    for name in args.engines.split(","):
        f, c = results.get(f"{name}/free"), results.get(f"{name}/constrained")
        if f and c:
            ratios[f"{name} constrained/free tok/s"] = (
                c["output_tokens_per_s"] / f["output_tokens_per_s"]
            )
    for k, v in ratios.items():
        print(f"{k:34s} {v:6.2f}x")
    for mode in args.modes.split(","):
        v, h = results.get(f"vllm/{mode}"), results.get(f"hf/{mode}")
        if v and h:  # greedy decoding: the engines should mostly agree token for token
            same = sum(a == b for a, b in zip(v["texts"], h["texts"], strict=True))
            print(f"vllm vs hf identical {mode} outputs: {same}/{len(v['texts'])}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "args": {k: str(v) for k, v in vars(args).items()},
                    "results": results,
                    "ratios": ratios,
                },
                indent=1,
            )
            + "\n"
        )


if __name__ == "__main__":  # vLLM on CPU spawns its engine core: keep the entry point guarded
    main()
