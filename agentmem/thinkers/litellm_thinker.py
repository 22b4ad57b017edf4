"""LiteLLMThinker: any hosted or self-served model reachable through litellm (OpenAI, Anthropic, vLLM, Ollama...).

litellm is imported on first call (it takes seconds to import). Its bundled model-cost map is used instead of
fetching one over the network (LITELLM_LOCAL_MODEL_COST_MAP, only set when the caller has not set it).
"""

from __future__ import annotations

import os
import time
from typing import Any

from agentmem.thinkers._thinking import field, openai_text
from agentmem.thinkers.base import ThinkerError, ThinkerStats, ThinkRequest, ThinkResult

__all__ = ["LiteLLMThinker"]


def _litellm() -> Any:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    try:
        import litellm
    except ImportError as e:  # pragma: no cover - litellm is a core dependency
        raise ThinkerError("litellm is not installed: pip install litellm") from e
    return litellm


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
        self.backend = "litellm"
        self.load_seconds: float | None = None  # a served model: nothing is loaded in this process
        self.stats = ThinkerStats()

    def _kwargs(self, request: ThinkRequest) -> dict[str, Any]:
        kw: dict[str, Any] = {"model": self.model, "messages": list(request.messages),
                              "max_tokens": request.max_new_tokens}
        if request.timeout_s is not None:
            kw["timeout"] = request.timeout_s
        if request.json_schema is not None:  # vLLM, OpenAI and llama-server honour it; others ignore it
            kw["response_format"] = {"type": "json_schema",
                                     "json_schema": {"name": "decision", "schema": request.json_schema}}
        kw.update(self.completion_kwargs)
        return kw

    def _result(self, response: Any, seconds: float) -> ThinkResult:
        if not (field(response, "choices") or []):
            raise ThinkerError(f"{self.model}: response has no choices")
        text, answer, finish = openai_text(response)
        if not text:
            raise ThinkerError(f"{self.model}: empty output (finish_reason={finish!r})")
        usage = field(response, "usage")
        details = field(usage, "prompt_tokens_details")
        result = ThinkResult(
            text=text,
            answer=answer,
            model=str(field(response, "model") or self.model),
            tokens_in=int(field(usage, "prompt_tokens", 0) or 0),
            tokens_out=int(field(usage, "completion_tokens", 0) or 0),
            cached_tokens=int(field(details, "cached_tokens", 0) or 0),
            seconds=seconds,
        )
        self.stats.record(result)
        return result

    def think(self, request: ThinkRequest) -> ThinkResult:
        litellm = _litellm()
        t0 = time.perf_counter()
        try:
            response = litellm.completion(**self._kwargs(request))
        except Exception as e:
            self.stats.record_failure()
            raise ThinkerError(f"{self.model}: {type(e).__name__}: {e}") from e
        return self._result(response, time.perf_counter() - t0)

    async def athink(self, request: ThinkRequest) -> ThinkResult:
        litellm = _litellm()
        t0 = time.perf_counter()
        try:
            response = await litellm.acompletion(**self._kwargs(request))
        except Exception as e:
            self.stats.record_failure()
            raise ThinkerError(f"{self.model}: {type(e).__name__}: {e}") from e
        return self._result(response, time.perf_counter() - t0)

    def __repr__(self) -> str:
        return f"LiteLLMThinker({self.model!r})"
