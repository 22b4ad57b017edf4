"""Offline token counting per model name.

tiktoken's own `get_encoding` downloads its BPE files on first use, which fails on an air-gapped box. litellm's
wheel bundles the cl100k/o200k files under `litellm/litellm_core_utils/tokenizers/`; we point TIKTOKEN_CACHE_DIR
there (found with importlib, without importing litellm, whose import costs seconds) unless the user set it.
Counting is per message and cached by message id by the callers, so a round costs O(new tokens).
"""

from __future__ import annotations

import importlib.util
import json
import os
import threading
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

from agentmem.messages import Message

__all__ = ["TokenCounter", "encoding_name_for", "count_text", "MESSAGE_OVERHEAD"]

MESSAGE_OVERHEAD = 4  # role + separators per message, as in OpenAI's published counting recipe
_lock = threading.Lock()


def _bundled_tiktoken_dir() -> str | None:
    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(list(spec.submodule_search_locations)[0], "litellm_core_utils", "tokenizers")
    return path if os.path.isdir(path) else None


def encoding_name_for(model: str | None) -> str:
    """o200k for the GPT-4o/4.1/5/o-series families, cl100k for everything else (a close proxy offline)."""
    m = (model or "").lower().split("/")[-1]
    if m.startswith(("gpt-4o", "gpt-4.1", "gpt-5", "o1", "o3", "o4", "chatgpt-4o")):
        return "o200k_base"
    return "cl100k_base"


@lru_cache(maxsize=4)
def _encoding(name: str):
    with _lock:
        if not os.environ.get("TIKTOKEN_CACHE_DIR"):
            bundled = _bundled_tiktoken_dir()
            if bundled:
                os.environ["TIKTOKEN_CACHE_DIR"] = bundled
        import tiktoken

        try:
            return tiktoken.get_encoding(name)
        except Exception as exc:  # network failure surfaces as various errors inside tiktoken
            raise RuntimeError(
                f"cannot load tokenizer {name!r} offline: install litellm (its wheel bundles the files) "
                f"or set TIKTOKEN_CACHE_DIR ({exc})"
            ) from exc


def count_text(text: str, model: str | None = None) -> int:
    return len(_encoding(encoding_name_for(model)).encode(text, disallowed_special=()))


class TokenCounter:
    """Counts tokens of messages and rendered dicts for one model name."""

    def __init__(self, model: str | None = None):
        self.model = model
        self.encoding_name = encoding_name_for(model)

    def text(self, text: str) -> int:
        if not text:
            return 0
        return len(_encoding(self.encoding_name).encode(text, disallowed_special=()))

    def message(self, message: Message | Mapping[str, Any]) -> int:
        """Tokens of one message: content, tool-call names and arguments, plus a fixed overhead."""
        if isinstance(message, Message):
            d = message.to_dict()
        else:
            d = message
        total = MESSAGE_OVERHEAD
        content = d.get("content")
        if isinstance(content, str):
            total += self.text(content)
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, Mapping):
                    if isinstance(part.get("text"), str):
                        total += self.text(part["text"])
                    else:  # images and other parts: count their JSON as a conservative proxy
                        total += self.text(json.dumps(part, ensure_ascii=False))
        for tc in d.get("tool_calls") or []:
            if not isinstance(tc, Mapping):
                continue
            fn = tc.get("function") if isinstance(tc.get("function"), Mapping) else tc  # OpenAI or flat shape
            args = fn.get("arguments") or ""
            if not isinstance(args, str):  # arguments given as an object
                args = json.dumps(args, ensure_ascii=False)
            total += self.text(fn.get("name") or "") + self.text(args) + 3
        if d.get("name"):
            total += 1
        return total

    def messages(self, messages: Iterable[Message | Mapping[str, Any]]) -> int:
        return sum(self.message(m) for m in messages) + 3  # every reply is primed with 3 tokens
