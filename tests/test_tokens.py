"""Offline token counting."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from agentmem.messages import parse_message
from agentmem.tokens import MESSAGE_OVERHEAD, TokenCounter, count_text, encoding_name_for

_NO_NETWORK = """
import socket
def _refuse(*a, **k):
    raise OSError("network disabled in this test")
socket.socket.connect = _refuse
socket.create_connection = _refuse
socket.getaddrinfo = _refuse
from agentmem.tokens import TokenCounter
out = {}
for model in ("gpt-4o", "claude-3-5-sonnet-20241022", "ollama/llama3", None):
    c = TokenCounter(model)
    out[str(model)] = [c.encoding_name, c.text("hello world, this is agentmem")]
print(json.dumps(out))
"""


def test_counting_works_with_the_network_disabled_and_no_cache_dir():
    env = {k: v for k, v in os.environ.items() if k != "TIKTOKEN_CACHE_DIR"}
    proc = subprocess.run([sys.executable, "-c", "import json\n" + _NO_NETWORK], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["gpt-4o"][0] == "o200k_base"
    assert out["claude-3-5-sonnet-20241022"][0] == out["ollama/llama3"][0] == out["None"][0] == "cl100k_base"
    assert all(n > 3 for _, n in out.values())


@pytest.mark.parametrize(("model", "encoding"), [
    ("gpt-4o", "o200k_base"), ("openai/gpt-4o-mini", "o200k_base"), ("gpt-4.1", "o200k_base"),
    ("o3-mini", "o200k_base"), ("gpt-5", "o200k_base"), ("gpt-4", "cl100k_base"), ("gpt-3.5-turbo", "cl100k_base"),
    ("anthropic/claude-3-opus", "cl100k_base"), ("deepseek-chat", "cl100k_base"), ("qwen2.5-coder", "cl100k_base"), (None, "cl100k_base"),
    ("", "cl100k_base"),
])
def test_encoding_for_model(model, encoding):
    assert encoding_name_for(model) == encoding
    assert TokenCounter(model).encoding_name == encoding


def test_text_counts_are_exact_tiktoken_counts():
    import tiktoken

    assert TokenCounter("gpt-4o").text("hello world") == 2  # also points tiktoken at the bundled files
    enc = tiktoken.get_encoding("o200k_base")
    text = "Reconcile invoice inv_0042 — total $1,234.56 🙂\n日本語"
    assert TokenCounter("gpt-4o").text(text) == len(enc.encode(text)) == count_text(text, "gpt-4o")
    assert TokenCounter("gpt-4o").text("") == 0
    # special-token text is counted as plain text, not rejected
    assert TokenCounter("gpt-4o").text("<|endoftext|>") > 1


def test_message_count_covers_content_calls_and_name():
    c = TokenCounter("gpt-4o")
    plain = parse_message({"role": "user", "content": "hello world"})
    assert c.message(plain) == MESSAGE_OVERHEAD + c.text("hello world")
    call = parse_message({"role": "assistant", "content": None,
                          "tool_calls": [{"id": "a", "name": "read_file", "arguments": '{"path": "/x/y.txt"}'}]})
    assert c.message(call) == MESSAGE_OVERHEAD + c.text("read_file") + c.text('{"path": "/x/y.txt"}') + 3
    named = parse_message({"role": "tool", "tool_call_id": "a", "name": "read_file", "content": "ok"})
    assert c.message(named) == MESSAGE_OVERHEAD + c.text("ok") + 1
    parts = parse_message({"role": "user", "content": [{"type": "text", "text": "look"},
                                                       {"type": "image_url", "image_url": {"url": "http://x"}}]})
    assert c.message(parts) > MESSAGE_OVERHEAD + c.text("look")  # non-text parts are counted, not ignored
    # a Message and its rendered dict count the same
    for m in (plain, call, named, parts):
        assert c.message(m) == c.message(m.to_dict())
    assert c.messages([plain, call]) == c.message(plain) + c.message(call) + 3
    # the flat shape of recorded trajectories counts the same as the OpenAI shape (baselines are compared on it)
    flat = {"role": "assistant", "content": None,
            "tool_calls": [{"id": "a", "name": "read_file", "arguments": '{"path": "/x/y.txt"}'}]}
    assert c.message(flat) == c.message(call)
    as_object = {"role": "assistant", "content": None, "tool_calls": [
        {"id": "a", "type": "function", "function": {"name": "read_file", "arguments": {"path": "/x/y.txt"}}}]}
    assert c.message(as_object) == c.message(call)


def test_longer_text_never_counts_fewer_tokens():
    c = TokenCounter("claude-3-haiku")
    base = "lorem ipsum dolor "
    counts = [c.text(base * n) for n in range(0, 60, 5)]
    assert counts == sorted(counts) and counts[-1] > 50


def test_tokenizer_per_model_is_litellms_bundled_one_or_a_named_fallback():
    deepseek = TokenCounter("deepseek/deepseek-chat")
    assert deepseek.tokenizer == "deepseek (litellm bundled)" and not deepseek.fallback
    assert deepseek.text("hello world") != 0
    assert TokenCounter("claude-sonnet-4-5").tokenizer == "anthropic (litellm bundled)"
    llama = TokenCounter("llama-3-70b")  # litellm would download this one: counted with cl100k, and said so
    assert llama.fallback and llama.tokenizer.startswith("cl100k_base (fallback") and "llama-3-70b" in llama.tokenizer
    assert TokenCounter("gpt-4o").tokenizer == "o200k_base" and TokenCounter(None).tokenizer == "cl100k_base"
    text = "Reconcile invoice inv_0042 — total $1,234.56 " * 20
    for c in (deepseek, TokenCounter("gpt-4o")):
        assert c.text(c.cut(text, 17)) <= 17 and c.cut(text, 10_000) == text


def test_tool_schemas_and_images_count_as_the_provider_charges_them():
    from agentmem.tokens import IMAGE_PART_TOKENS, TOOL_OVERHEAD

    c = TokenCounter("gpt-4o")
    schema = {"type": "function", "function": {"name": "read_file", "parameters": {"type": "object"}}}
    assert c.tools([schema]) == c.text(json.dumps(schema, sort_keys=True)) + TOOL_OVERHEAD and c.tools(None) == 0
    huge = parse_message({"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64," + "A" * 1_000_000}}]})
    assert c.message(huge) == MESSAGE_OVERHEAD + IMAGE_PART_TOKENS  # not 1 MB of base64 text
