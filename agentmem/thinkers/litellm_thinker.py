"""LiteLLMThinker: any hosted or self-served model reachable through litellm (OpenAI, Anthropic, vLLM, Ollama...).

litellm is imported on first call (it takes seconds to import). Its bundled model-cost map is used instead of
fetching one over the network (LITELLM_LOCAL_MODEL_COST_MAP, only set when the caller has not set it).
"""

from __future__ import annotations

import os
import time
from typing import Any

from agentmem.thinkers._thinking import split_thinking
from agentmem.thinkers.base import ThinkerError, ThinkRequest, ThinkResult

__all__ = ["LiteLLMThinker"]


def _litellm() -> Any:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    try:
        import litellm
    except ImportError as e:  # pragma: no cover - litellm is a core dependency
        raise ThinkerError("litellm is not installed: pip install litellm") from e
    return litellm


def _get(obj: Any, key: str, default: Any = None) -> Any:
    if obj is None:
        return default
    if isinstance(obj, dict):
        return obj.get(key, default)
    return getattr(obj, key, default)


class LiteLLMThinker:
    """A Thinker that calls `litellm.completion` / `litellm.acompletion`.

    Args:
        model: a litellm model string, e.g. "openai/gpt-4o-mini", "anthropic/claude-3-5-haiku-latest",
            "hosted_vllm/Qwen/Qwen3-8B", "ollama_chat/qwen3:1.7b".
        **completion_kwargs: passed to every call (api_base, api_key, temperature, num_retries, mock_response...).
            Per request, max_new_tokens becomes max_tokens and timeout_s becomes timeout.

    `text` is the model's reasoning (litellm's `reasoning_content`, or a `<think>` block in the content) when there
    is one, else the content; `answer` is the content after the reasoning.
    """

    def __init__(self, model: str, **completion_kwargs: Any) -> None:
        if not model:
            raise ValueError("LiteLLMThinker needs a model name")
        self.model = model
        self.name = model
        self.completion_kwargs = dict(completion_kwargs)

    def _kwargs(self, request: ThinkRequest) -> dict[str, Any]:
        kw: dict[str, Any] = {"model": self.model, "messages": list(request.messages),
                              "max_tokens": request.max_new_tokens}
        if request.timeout_s is not None:
            kw["timeout"] = request.timeout_s
        kw.update(self.completion_kwargs)
        return kw

    def _result(self, response: Any, seconds: float) -> ThinkResult:
        choices = _get(response, "choices") or []
        if not choices:
            raise ThinkerError(f"{self.model}: response has no choices")
        message = _get(choices[0], "message")
        content = _get(message, "content") or ""
        if not isinstance(content, str):  # content parts
            content = "".join(_get(p, "text", "") or "" for p in content)
        reasoning = _get(message, "reasoning_content") or ""
        if not reasoning:
            blocks = _get(message, "thinking_blocks") or []
            reasoning = "\n".join(_get(b, "thinking", "") or "" for b in blocks)
        if reasoning.strip():
            text, answer = reasoning.strip(), content.strip()
        elif (parts := split_thinking(content)) is not None:
            thinking, answer = parts
            text = thinking or answer
        else:
            text, answer = content.strip(), ""
        if not text:
            reason = _get(choices[0], "finish_reason")
            raise ThinkerError(f"{self.model}: empty output (finish_reason={reason!r})")
        usage = _get(response, "usage")
        return ThinkResult(
            text=text,
            answer=answer,
            model=str(_get(response, "model") or self.model),
            tokens_in=int(_get(usage, "prompt_tokens", 0) or 0),
            tokens_out=int(_get(usage, "completion_tokens", 0) or 0),
            seconds=seconds,
        )

    def think(self, request: ThinkRequest) -> ThinkResult:
        litellm = _litellm()
        t0 = time.perf_counter()
        try:
            response = litellm.completion(**self._kwargs(request))
        except Exception as e:
            raise ThinkerError(f"{self.model}: {type(e).__name__}: {e}") from e
        return self._result(response, time.perf_counter() - t0)

    async def athink(self, request: ThinkRequest) -> ThinkResult:
        litellm = _litellm()
        t0 = time.perf_counter()
        try:
            response = await litellm.acompletion(**self._kwargs(request))
        except Exception as e:
            raise ThinkerError(f"{self.model}: {type(e).__name__}: {e}") from e
        return self._result(response, time.perf_counter() - t0)

    def __repr__(self) -> str:
        return f"LiteLLMThinker({self.model!r})"
