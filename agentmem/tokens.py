"""Offline token counting per model name.

Which tokenizer counts a model is litellm's choice (`litellm.utils.huggingface_tokenizer_kind`, the selection its
`token_counter` makes), restricted to the files litellm's wheel bundles: the Anthropic and DeepSeek tokenizer JSON
files and tiktoken's cl100k/o200k BPE files. Where litellm would download a tokenizer from the model hub (Llama,
Cohere) or has none (Qwen, local models), counts fall back to cl100k and `TokenCounter.tokenizer` says so; the
sessions show it in `last_round["tokenizer"]`. Nothing is fetched at run time.

tiktoken's own `get_encoding` downloads its BPE files on first use, which fails on an air-gapped box; we point
TIKTOKEN_CACHE_DIR at litellm's bundled copies (found with importlib, without importing litellm, whose import costs
seconds) unless the user set it. litellm itself is imported only for model names that are not OpenAI's.
Counting is per message and cached by message id by the callers, so a round costs O(new tokens).
"""

from __future__ import annotations

import importlib.util
import json
import os
import threading
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any

from agentmem.messages import Message

__all__ = ["TokenCounter", "encoding_name_for", "count_text", "MESSAGE_OVERHEAD", "IMAGE_PART_TOKENS",
           "TOOL_OVERHEAD", "tool_schema"]

MESSAGE_OVERHEAD = 4  # role + separators per message, as in OpenAI's published counting recipe
TOOL_OVERHEAD = 8  # per tool definition, beside its JSON schema (providers wrap each tool in a few tokens)
# An image part costs the provider a fixed-size tile budget, not the length of its base64 text (counting the JSON of
# a 1 MB data URL would claim ~700K tokens). 1,105 tokens = OpenAI's high-detail price of a 1024×1024 image.
IMAGE_PART_TOKENS = 1105
_IMAGE_PART_TYPES = ("image_url", "image", "input_image")
_BUNDLED_HF = {"anthropic": "anthropic_tokenizer.json", "deepseek": "deepseek_tokenizer.json"}
_lock = threading.Lock()


def _bundled_tiktoken_dir() -> str | None:
    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(list(spec.submodule_search_locations)[0], "litellm_core_utils", "tokenizers")
    return path if os.path.isdir(path) else None


def encoding_name_for(model: str | None) -> str:
    """o200k for the GPT-4o/4.1/5/o-series families, cl100k for everything else (the tiktoken proxy)."""
    m = (model or "").lower().split("/")[-1]
    if m.startswith(("gpt-4o", "gpt-4.1", "gpt-5", "o1", "o3", "o4", "chatgpt-4o")):
        return "o200k_base"
    return "cl100k_base"


def _is_openai_name(model: str) -> bool:
    m = model.lower().split("/")[-1]
    return m.startswith(("gpt-", "o1", "o3", "o4", "chatgpt-", "text-embedding", "davinci", "babbage"))


@lru_cache(maxsize=64)
def _litellm_kind(model: str) -> str | None:
    """The HuggingFace tokenizer litellm's token_counter would pick for `model` (None: tiktoken)."""
    if not model or _is_openai_name(model):
        return None
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    try:
        from litellm.utils import huggingface_tokenizer_kind
    except Exception:  # an older litellm without the function: tiktoken, as litellm itself would fall back
        return None
    return huggingface_tokenizer_kind(model)


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


@lru_cache(maxsize=4)
def _hf_tokenizer(kind: str):
    """A tokenizer JSON file bundled in litellm's wheel, loaded with `tokenizers` (a litellm dependency)."""
    from importlib import resources

    import tokenizers

    text = resources.files("litellm.litellm_core_utils.tokenizers").joinpath(_BUNDLED_HF[kind]).read_text(
        encoding="utf-8")
    return tokenizers.Tokenizer.from_str(text)


def count_text(text: str, model: str | None = None) -> int:
    return TokenCounter(model).text(text)


def tool_schema(tool: Any) -> dict[str, Any]:
    """The OpenAI function schema of a tool given as a dict, a LangChain tool or a plain function."""
    if isinstance(tool, Mapping):
        return dict(tool)
    from langchain_core.utils.function_calling import convert_to_openai_tool  # only reached from the integrations

    return convert_to_openai_tool(tool)


class TokenCounter:
    """Counts tokens of messages, rendered dicts and tool schemas for one model name.

    Attributes:
        encoding_name: the tiktoken encoding used to cut text at token boundaries (cl100k or o200k).
        tokenizer: what counts, e.g. "o200k_base", "deepseek (litellm bundled)", or
            "cl100k_base (fallback: no offline tokenizer for 'ollama/llama3')".
    """

    def __init__(self, model: str | None = None):
        self.model = model
        self.encoding_name = encoding_name_for(model)
        kind = _litellm_kind(model or "")
        self._hf_kind = kind if kind in _BUNDLED_HF else None
        if self._hf_kind is not None:
            self.tokenizer = f"{self._hf_kind} (litellm bundled)"
        elif model and not _is_openai_name(model):
            why = f"litellm's {kind} tokenizer is not bundled offline" if kind else "no offline tokenizer"
            self.tokenizer = f"{self.encoding_name} (fallback: {why} for {model!r})"
        else:
            self.tokenizer = self.encoding_name
        self.fallback = "fallback" in self.tokenizer
        self._tool_tokens: dict[int, tuple[Any, int]] = {}  # id → (the tool, its tokens): a schema per call is slow

    def text(self, text: str) -> int:
        if not text:
            return 0
        if self._hf_kind is not None:
            return len(_hf_tokenizer(self._hf_kind).encode(text, add_special_tokens=False).ids)
        return len(_encoding(self.encoding_name).encode(text, disallowed_special=()))

    def cut(self, text: str, n: int) -> str:
        """The longest prefix of `text` of at most `n` tokens (by this counter's tokenizer)."""
        if self._hf_kind is not None:
            tk = _hf_tokenizer(self._hf_kind)
            return tk.decode(tk.encode(text, add_special_tokens=False).ids[: max(0, n)])
        enc = _encoding(self.encoding_name)
        return enc.decode(enc.encode(text, disallowed_special=())[: max(0, n)])

    def _part(self, part: Mapping[str, Any]) -> int:
        if isinstance(part.get("text"), str):
            return self.text(part["text"])
        if part.get("type") in _IMAGE_PART_TYPES:
            return IMAGE_PART_TOKENS
        return self.text(json.dumps(part, ensure_ascii=False))  # other parts: their JSON, a conservative proxy

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
            total += sum(self._part(p) for p in content if isinstance(p, Mapping))
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

    def tools(self, tools: Sequence[Any] | None) -> int:
        """Tokens the tool definitions of a request cost: each schema's JSON plus a small per-tool overhead."""
        if not tools:
            return 0
        total = 0
        for t in tools:
            known = self._tool_tokens.get(id(t))
            if known is not None and known[0] is t and not isinstance(t, Mapping):  # dicts may change in place
                total += known[1]
                continue
            n = self.text(json.dumps(tool_schema(t), ensure_ascii=False, sort_keys=True)) + TOOL_OVERHEAD
            if len(self._tool_tokens) > 1024:
                self._tool_tokens.clear()
            self._tool_tokens[id(t)] = (t, n)
            total += n
        return total
