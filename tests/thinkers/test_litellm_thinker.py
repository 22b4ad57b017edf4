"""LiteLLMThinker against litellm's own mock_response and a real OpenAI-compatible HTTP server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from agentmem.thinkers import LiteLLMThinker, Thinker, ThinkerError, ThinkRequest

REQ = ThinkRequest(messages=[{"role": "user", "content": "fold this span"}], max_new_tokens=64, timeout_s=20)


class _Server:
    """A tiny OpenAI-compatible /v1/chat/completions server. `reply` decides each response."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.status = 200
        self.delay_s = 0.0
        self.message: dict = {"role": "assistant", "content": "ok"}
        self.usage = {"prompt_tokens": 123, "completion_tokens": 45, "total_tokens": 168}
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
                outer.requests.append({"path": self.path, "body": body})
                if outer.delay_s:
                    time.sleep(outer.delay_s)
                if outer.status != 200:
                    payload = {"error": {"message": "boom from test server", "type": "server_error"}}
                else:
                    payload = {
                        "id": "chatcmpl-test", "object": "chat.completion", "created": 1, "model": "served-model",
                        "choices": [{"index": 0, "finish_reason": "stop", "message": outer.message}],
                        "usage": outer.usage,
                    }
                data = json.dumps(payload).encode()
                try:
                    self.send_response(outer.status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args):  # quiet
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.api_base = f"http://127.0.0.1:{self.httpd.server_port}/v1"

    def thinker(self, **kw) -> LiteLLMThinker:
        return LiteLLMThinker("openai/x", api_base=self.api_base, api_key="test-key", max_retries=0, **kw)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = _Server()
    yield s
    s.close()


def test_is_a_thinker():
    t = LiteLLMThinker("openai/gpt-4o-mini")
    assert isinstance(t, Thinker) and t.name == "openai/gpt-4o-mini"


def test_mock_response_plain_content():
    t = LiteLLMThinker("openai/gpt-4o-mini", mock_response="Kept: file a.py fixed; tests 3 failing.")
    r = t.think(REQ)
    assert r.text == "Kept: file a.py fixed; tests 3 failing."
    assert r.answer == ""
    assert r.tokens_out > 0 and r.tokens_in > 0


def test_mock_response_think_block_is_split():
    t = LiteLLMThinker("openai/gpt-4o-mini", mock_response="<think>the agent fixed parse()</think>\nDone.")
    r = t.think(REQ)
    assert r.text == "the agent fixed parse()"
    assert r.answer == "Done."


def test_mock_response_async():
    t = LiteLLMThinker("openai/gpt-4o-mini", mock_response="async summary")
    r = asyncio.run(t.athink(REQ))
    assert r.text == "async summary"


def test_server_reasoning_content_and_usage(server):
    server.message = {"role": "assistant", "content": "final answer", "reasoning_content": "step 1, step 2"}
    r = server.thinker().think(REQ)
    assert r.text == "step 1, step 2"
    assert r.answer == "final answer"
    assert (r.tokens_in, r.tokens_out) == (123, 45)
    assert r.model == "served-model"
    assert r.seconds > 0
    # what went over the wire
    assert len(server.requests) == 1
    req = server.requests[0]
    assert req["path"].endswith("/chat/completions")
    assert req["body"]["max_tokens"] == 64
    assert req["body"]["messages"] == [{"role": "user", "content": "fold this span"}]
    assert req["body"]["model"] == "x"


def test_server_plain_content_async(server):
    server.message = {"role": "assistant", "content": "just the content"}
    r = asyncio.run(server.thinker().athink(REQ))
    assert (r.text, r.answer) == ("just the content", "")
    assert len(server.requests) == 1


def test_completion_kwargs_are_forwarded(server):
    server.thinker(temperature=0.25).think(REQ)
    assert server.requests[0]["body"]["temperature"] == 0.25


def test_server_error_becomes_thinker_error(server):
    server.status = 500
    with pytest.raises(ThinkerError, match="openai/x"):
        server.thinker().think(REQ)
    assert len(server.requests) >= 1


def test_server_error_async(server):
    server.status = 500
    with pytest.raises(ThinkerError):
        asyncio.run(server.thinker().athink(REQ))


def test_timeout_becomes_thinker_error(server):
    server.delay_s = 5.0
    t0 = time.perf_counter()
    with pytest.raises(ThinkerError, match="(?i)timeout|timed out"):
        server.thinker().think(ThinkRequest(messages=REQ.messages, max_new_tokens=8, timeout_s=0.5))
    assert time.perf_counter() - t0 < 4.5


def test_empty_content_is_an_error(server):
    server.message = {"role": "assistant", "content": ""}
    with pytest.raises(ThinkerError, match="empty output"):
        server.thinker().think(REQ)


def test_unreachable_server_is_an_error():
    t = LiteLLMThinker("openai/x", api_base="http://127.0.0.1:9/v1", api_key="k", max_retries=0)
    with pytest.raises(ThinkerError):
        t.think(ThinkRequest(messages=REQ.messages, max_new_tokens=8, timeout_s=5))
