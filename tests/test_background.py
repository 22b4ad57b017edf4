"""Background folding (soft watermark → worker → applied at a round boundary) and auto-recall."""

from __future__ import annotations

import time

from agentmem import MemorySession, Store
from agentmem.policies import BudgetPolicy
from agentmem.testing import ScriptedThinker, synthetic_history


def _call_points(history):
    for i in range(2, len(history) + 1):
        last, nxt = history[i - 1], (history[i] if i < len(history) else None)
        if last["role"] == "user" or (last["role"] == "tool" and (nxt is None or nxt["role"] != "tool")):
            yield history[:i]


def _run(tmp_path, *, background: bool, delay: float, name: str, pause: float = 0.0):
    thinker = ScriptedThinker(["Invoices read so far: /data/invoices/0_0.json onward; keep going."], delay_s=delay)
    policy = BudgetPolicy(budget_tokens=5000, fold_mode="think", soft_ratio=0.7, low_ratio=0.5)
    session = MemorySession(Store(tmp_path / f"{name}.db"), name, policy=policy, thinker=thinker,
                            background=background)
    stats = []
    for prefix in _call_points(synthetic_history(70, output_chars=500)):
        session.prepare(prefix)
        stats.append(session.last)
        time.sleep(pause)  # the agent's own model call
    session.close()
    return session, thinker, stats


def test_background_folds_leave_the_critical_path(tmp_path):
    session, thinker, stats = _run(tmp_path, background=True, delay=0.2, name="bg", pause=0.05)
    planned = [s for s in stats if any(a["kind"] == "planned" for a in s.actions)]
    applied = [a for s in stats for a in s.actions if a.get("background") and a["kind"] == "summarize"]
    assert planned and applied, "no fold was planned and applied in the background"
    assert thinker.requests
    # every view stayed within the hard budget
    assert max(s.view_tokens for s in stats) <= 5000
    # most rounds paid no thinker time at all on the critical path
    waited = [s.thinker_ms for s in stats if s.thinker_ms > 0]
    assert len(waited) < len(applied) + 1
    sync_session, _, sync_stats = _run(tmp_path, background=False, delay=0.2, name="sync")
    assert sum(s.thinker_ms for s in stats) < sum(s.thinker_ms for s in sync_stats)
    # the log records only completed folds and replays to the same view
    again = MemorySession(session.store, "bg", policy=session.policy)
    assert again.view.render() == session.view.render()


def test_agent_waits_only_when_the_hard_budget_needs_it(tmp_path):
    # a slow thinker and no pause: the job cannot finish before the budget is hit, so the agent waits
    _, _, stats = _run(tmp_path, background=True, delay=0.5, name="slow")
    assert max(s.view_tokens for s in stats) <= 5000
    assert any(s.thinker_ms >= 100 for s in stats), "the hard-budget wait branch did not run"


def test_background_failure_falls_back_to_extractive(tmp_path):
    thinker = ScriptedThinker([RuntimeError("model server down")])
    policy = BudgetPolicy(budget_tokens=5000, fold_mode="think", soft_ratio=0.7, low_ratio=0.5)
    session = MemorySession(Store(tmp_path / "f.db"), "f", policy=policy, thinker=thinker, background=True)
    folds = []
    for prefix in _call_points(synthetic_history(50, output_chars=500)):
        session.prepare(prefix)
        folds += [a for a in session.last.actions if a["kind"] in ("fold", "summarize")]
    session.close()
    assert folds and all(a["kind"] == "fold" and "fallback" in a for a in folds)
    assert session.view.tokens <= 5000


def test_auto_recall_brings_back_a_folded_value(tmp_path):
    history = synthetic_history(40, output_chars=300)
    policy = BudgetPolicy(budget_tokens=3000, auto_recall=True, recall_tokens=200)
    session = MemorySession(Store(tmp_path / "r.db"), "r", policy=policy)
    session.prepare(history)
    assert any(it.key.startswith("blk-") for it in session.view.items)
    first_invoice = history[3]["content"]
    import json

    inv = json.loads(first_invoice)["invoice_id"]
    # the user now asks about that invoice: auto-recall should bring its original back into the view
    session.prepare(history + [{"role": "assistant", "content": "Done."},
                               {"role": "user", "content": f"What was the amount of {inv}?"}])
    recalled = [a for a in session.last.actions if a["kind"] == "recall"]
    assert recalled, "auto-recall did not run"
    last = session.view.render()[-1]["content"]
    assert last.startswith("[agentmem: recalled") and inv in last
