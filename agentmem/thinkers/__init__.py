"""Thinkers: the only place agentmem calls a model.

Importing this package is cheap: LocalThinker (torch/transformers) and LiteLLMThinker (litellm) are loaded on
first attribute access, and their heavy dependencies only on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agentmem.thinkers.base import Thinker, ThinkerError, ThinkRequest, ThinkResult

if TYPE_CHECKING:
    from agentmem.thinkers.litellm_thinker import LiteLLMThinker
    from agentmem.thinkers.local import LocalThinker

__all__ = [
    "LiteLLMThinker",
    "LocalThinker",
    "Thinker",
    "ThinkerError",
    "ThinkRequest",
    "ThinkResult",
    "make_thinker",
]

_LAZY = {
    "LocalThinker": "agentmem.thinkers.local",
    "LiteLLMThinker": "agentmem.thinkers.litellm_thinker",
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


def make_thinker(spec: str | Thinker | None, **kwargs: Any) -> Thinker | None:
    """Build a thinker from a short spec.

    None / "" / "extractive" -> None (no model: the extractive fold);
    "local" -> LocalThinker() on the offline default model; "smollm2" -> LocalThinker on the small test model;
    "local:<hf id or path>" -> LocalThinker(that); any other string -> LiteLLMThinker(spec), e.g. "openai/gpt-4o-mini".
    A Thinker instance is returned as is. `kwargs` go to the thinker's constructor.
    """
    if spec is None:
        return None
    if not isinstance(spec, str):
        if isinstance(spec, Thinker):
            return spec
        raise TypeError(f"not a thinker spec: {spec!r}")
    s = spec.strip()
    if s.lower() in ("", "extractive", "none"):
        return None
    if s.lower() == "local":
        from agentmem.thinkers.local import LocalThinker

        return LocalThinker(**kwargs)
    if s.lower() == "smollm2":
        from agentmem.thinkers.local import SMOLLM2, LocalThinker

        return LocalThinker(SMOLLM2, **kwargs)
    if s.lower().startswith("local:"):
        from agentmem.thinkers.local import LocalThinker

        target = s[len("local:"):].strip()
        return LocalThinker(target or None, **kwargs)
    from agentmem.thinkers.litellm_thinker import LiteLLMThinker

    return LiteLLMThinker(s, **kwargs)
