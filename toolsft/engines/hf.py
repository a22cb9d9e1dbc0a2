"""The transformers engine: batched, left-padded `generate`, a LoRA adapter through peft.

The reference that vLLM is compared against, and the engine for machines without vLLM.
An adapter is merged into the weights after loading (inference only), which makes every
forward pass as cheap as the base model's. Constrained decoding uses xgrammar's logits
processor with the same structural tag as the vLLM engine.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from toolsft.engines.base import Decoding, EngineError, Generation, Request, strip_stop
from toolsft.engines.constrain import structural_tag_json
from toolsft.engines.prompts import PromptRenderer, tokenizer_source
from toolsft.hardware import cpu_has_bf16

logger = logging.getLogger(__name__)


class HFEngine:
    """transformers `generate` over batches of requests sorted by prompt length."""

    name = "hf"

    def __init__(
        self,
        model: str | Path,
        adapter: str | Path | None = None,
        *,
        batch_size: int = 16,
        device: str = "auto",
        dtype: str = "auto",
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM

        self.model_path, self.adapter = str(model), (str(adapter) if adapter else None)
        self.batch_size = max(1, int(batch_size))
        self.device = (
            ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        )
        torch_dtype = _dtype(dtype, self.device)
        self._load_renderer()
        # Any: the base or its merged peft model, None once closed; transformers types `to`
        # and `generate` through decorators mypy cannot follow.
        self.model: Any = AutoModelForCausalLM.from_pretrained(self.model_path, dtype=torch_dtype)
        if self.adapter:
            self.model = _merge_adapter(self.model, self.adapter)
        self.model.to(self.device).eval()
        self._compiler: Any = None
        self._grammars: dict[str, Any] = {}
        self._base_state: dict[str, Any] | None = None

    def _load_renderer(self) -> None:
        from transformers import AutoTokenizer

        tok_src = tokenizer_source(self.model_path, self.adapter)
        tokenizer = AutoTokenizer.from_pretrained(tok_src)
        tokenizer.padding_side = "left"
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.renderer = PromptRenderer(tokenizer, tok_src)
        self.stop_ids = self.renderer.stop_token_ids()

    def use_adapter(self, adapter: str | Path | None) -> None:
        """Serve another adapter (None: the base model) from the loaded base: its weights are
        kept once and restored before each merge, so a learning curve loads the model once."""
        if self._base_state is None:
            if self.adapter:
                raise EngineError("this engine merged --adapter at start; start it without one")
            self._base_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        else:
            self.model.load_state_dict(self._base_state)
        self.adapter = str(adapter) if adapter else None
        if self.adapter:
            self.model = _merge_adapter(self.model, self.adapter)
            self.model.to(self.device).eval()
        self._load_renderer()
        self._grammars = {}

    def info(self) -> dict[str, Any]:
        import transformers

        return {
            "engine": self.name,
            "model": self.model_path,
            "adapter": self.adapter,
            "device": self.device,
            "dtype": str(self.model.dtype).removeprefix("torch."),
            "batch_size": self.batch_size,
            "transformers": transformers.__version__,
        }

    def close(self) -> None:
        self.model = None

    def generate(self, requests: Sequence[Request], decoding: Decoding) -> list[Generation]:
        ids = self.renderer.batch_ids(requests)
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        out: list[Generation | None] = [None] * len(ids)
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            gens = self._batch([ids[i] for i in chunk], [requests[i] for i in chunk], decoding)
            for i, gen in zip(chunk, gens, strict=True):
                out[i] = gen
        return [g for g in out if g is not None]

    def _batch(
        self, ids: list[list[int]], requests: list[Request], decoding: Decoding
    ) -> list[Generation]:
        import torch
        from transformers import LogitsProcessorList, StoppingCriteriaList

        pad = self.renderer.tokenizer.pad_token_id
        width = max(len(x) for x in ids)
        input_ids = torch.tensor([[pad] * (width - len(x)) + x for x in ids], device=self.device)
        mask = torch.tensor(
            [[0] * (width - len(x)) + [1] * len(x) for x in ids], device=self.device
        )
        clock = _StepClock()
        processors = LogitsProcessorList()
        if decoding.grammar and all(r.tools for r in requests):
            processors.append(self._grammar_processor(requests, decoding.tool_choice == "required"))
        sample = decoding.temperature > 0
        torch.manual_seed(decoding.seed)
        clock.start()
        with torch.inference_mode():
            seqs = self.model.generate(
                input_ids=input_ids,
                attention_mask=mask,
                max_new_tokens=decoding.max_tokens,
                do_sample=sample,
                temperature=decoding.temperature if sample else None,
                top_p=decoding.top_p if sample else None,
                top_k=None,
                eos_token_id=self.stop_ids,
                pad_token_id=pad,
                logits_processor=processors,
                stopping_criteria=StoppingCriteriaList([clock]),
            )
        return [
            self._one(row[width:].tolist(), len(x), clock) for row, x in zip(seqs, ids, strict=True)
        ]

    def _one(self, new: list[int], n_prompt: int, clock: _StepClock) -> Generation:
        n = len(new)
        for j, tok in enumerate(new):
            if tok in self.stop_ids:
                n = j + 1
                break
        finished = n < len(new) or (new and new[n - 1] in self.stop_ids)
        body = [t for t in new[:n] if t not in self.stop_ids]
        text = self.renderer.tokenizer.decode(body, skip_special_tokens=False)
        return Generation(
            text=strip_stop(text),
            prompt_tokens=n_prompt,
            output_tokens=n,
            ttft_s=clock.at(1),
            latency_s=clock.at(n),
            finish_reason="stop" if finished else "length",
        )

    def _grammar_processor(self, requests: list[Request], required: bool) -> Any:
        from xgrammar.contrib.hf import LogitsProcessor

        return LogitsProcessor([self._grammar(r, required) for r in requests])

    def _grammar(self, request: Request, required: bool) -> Any:
        import xgrammar as xgr

        spec = structural_tag_json(request.tools, required)
        if spec not in self._grammars:
            if self._compiler is None:
                info = xgr.TokenizerInfo.from_huggingface(
                    self.renderer.tokenizer,
                    vocab_size=self.model.config.vocab_size,
                    stop_token_ids=self.stop_ids,
                )
                self._compiler = xgr.GrammarCompiler(info)
            self._grammars[spec] = self._compiler.compile_structural_tag(spec)
        return self._grammars[spec]


class _StepClock:
    """A stopping criterion that never stops: it timestamps every generation step.

    `generate` calls it once per new token for the whole batch, so step k's time is when
    every row had k tokens: TTFT is step 1, a row's latency the step of its last token.
    """

    def __init__(self) -> None:
        self.t0 = 0.0
        self.steps: list[float] = []

    def start(self) -> None:
        self.t0, self.steps = time.perf_counter(), []

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        self.steps.append(time.perf_counter() - self.t0)
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)

    def at(self, k: int) -> float | None:
        if not self.steps or k <= 0:
            return None
        return self.steps[min(k, len(self.steps)) - 1]


def _dtype(name: str, device: str) -> Any:
    import torch

    if name == "auto":
        # bf16 where the hardware has it (GPUs; CPUs with AMX or AVX512-BF16: 2-7x faster than
        # fp32 there, measured on SmolLM2-135M), fp32 on other CPUs where bf16 is emulated.
        return torch.bfloat16 if device.startswith("cuda") or cpu_has_bf16() else torch.float32
    try:
        return getattr(torch, name)
    except AttributeError as exc:
        raise EngineError(
            f"--dtype {name!r} is not a torch dtype (float32, bfloat16, float16)"
        ) from exc


def _merge_adapter(model: Any, adapter: str) -> Any:
    from peft import PeftModel

    if not (Path(adapter) / "adapter_config.json").is_file():
        raise EngineError(
            f"--adapter {adapter}: adapter_config.json not found (not a peft adapter)"
        )
    logger.info("loading adapter %s and merging it for inference", adapter)
    return PeftModel.from_pretrained(model, adapter).merge_and_unload()
