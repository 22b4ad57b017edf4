"""Thinkers: the only place agentmem calls a model.

Importing this package is cheap: LlamaCppThinker (llama.cpp), LocalThinker (torch/transformers) and
LiteLLMThinker (litellm) are loaded on first attribute access, and their heavy dependencies only on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agentmem.thinkers.base import Thinker, ThinkerError, ThinkerStats, ThinkRequest, ThinkResult
from agentmem.thinkers.summary import THINKER_SUMMARY_KEYS, thinker_summary

if TYPE_CHECKING:
    from agentmem.thinkers.litellm_thinker import LiteLLMThinker
    from agentmem.thinkers.llamacpp import LlamaCppThinker
    from agentmem.thinkers.local import LocalThinker

__all__ = [
    "THINKER_SUMMARY_KEYS",
    "LiteLLMThinker",
    "LlamaCppThinker",
    "LocalThinker",
    "Thinker",
    "ThinkerError",
    "ThinkRequest",
    "ThinkResult",
    "ThinkerStats",
    "make_thinker",
    "thinker_summary",
]

_LAZY = {
    "LocalThinker": "agentmem.thinkers.local",
    "LiteLLMThinker": "agentmem.thinkers.litellm_thinker",
    "LlamaCppThinker": "agentmem.thinkers.llamacpp",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def _cuda_without_llamacpp_gpu() -> bool:
    """A CUDA machine whose llama.cpp build cannot offload: transformers (bf16 on CUDA) is the faster local path.

    torch is imported only when an NVIDIA driver is present, so the CPU default stays cheap to pick.
    """
    import os

    if not os.path.exists("/proc/driver/nvidia") and not os.environ.get("CUDA_VISIBLE_DEVICES"):
        return False
    from agentmem.thinkers.llamacpp import gpu_offload_available

    if gpu_offload_available():
        return False
    try:
        import torch

        return bool(torch.cuda.is_available())
    except ImportError:
        return False


def _local(model: str | None, kwargs: dict[str, Any]) -> Thinker:
    """The in-process backend for a shipped GGUF: llama.cpp when installed (and not beaten by CUDA transformers)."""
    from agentmem.thinkers.llamacpp import LlamaCppThinker, llamacpp_available

    if llamacpp_available() and not _cuda_without_llamacpp_gpu():
        return LlamaCppThinker(model, **kwargs)
    from agentmem.thinkers.local import LocalThinker

    return LocalThinker(model, **kwargs)


def make_thinker(spec: str | Thinker | None, **kwargs: Any) -> Thinker | None:
    """Build a thinker from a short spec.

    None / "" / "extractive" -> None (no model: the extractive fold);
    "local" -> the offline default model, on llama.cpp (LlamaCppThinker; transformers only when xllamacpp is
    missing, or on a CUDA machine whose llama.cpp build is CPU-only); "smollm2" -> the small test model, likewise;
    "local:<file>.gguf" / "llamacpp:<file>.gguf|local|smollm2" -> LlamaCppThinker on that GGUF;
    "local:<hf id or dir>" / "transformers:<hf id|path|local|smollm2>" -> LocalThinker (transformers);
    any other string -> LiteLLMThinker(spec), e.g. "openai/gpt-4o-mini", "hosted_vllm/Qwen/Qwen3-8B".
    A Thinker instance is returned as is. `kwargs` go to the thinker's constructor.
    """
    if spec is None:
        return None
    if not isinstance(spec, str):
        if isinstance(spec, Thinker):
            return spec
        raise TypeError(f"not a thinker spec: {spec!r}")
    s = spec.strip()
    low = s.lower()
    if low in ("", "extractive", "none"):
        return None
    if low in ("local", "smollm2"):
        return _local(None if low == "local" else "smollm2", kwargs)
    prefix, _, target = s.partition(":")
    target = target.strip()
    if prefix.lower() == "llamacpp":
        from agentmem.thinkers.llamacpp import LlamaCppThinker

        return LlamaCppThinker(target or None, **kwargs)
    if prefix.lower() == "transformers":
        from agentmem.thinkers.local import LocalThinker

        return LocalThinker(target or None, **kwargs)
    if prefix.lower() == "local":
        if target.lower().endswith(".gguf"):
            return _local(target, kwargs)
        from agentmem.thinkers.local import LocalThinker

        return LocalThinker(target or None, **kwargs)
    from agentmem.thinkers.litellm_thinker import LiteLLMThinker

    return LiteLLMThinker(s, **kwargs)
