"""ThinkerPolicy in the background: the agent never waits on the model at the hard budget.

A gated thinker (a real class that records each request and answers only when the test opens its gate) stands in
for a slow model. At the hard budget the round proceeds with the budget rule ("decision pending", logged like any
decision); the decision, when it arrives, is re-checked against the view of that round: applied when its items are
still there and raw, logged stale otherwise. The store replays to the live view every time; sync and async alike.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest

from agentmem import MemorySession, Store
from agentmem.policies import ThinkerPolicy
from agentmem.thinkers.base import ThinkRequest, ThinkResult
from agentmem.testing import synthetic_history

BUDGET = 8000


class GatedThinker:
    """Answers a decision only once `gate` is set (or after `max_wait_s`, so a broken session cannot hang the
    test); records when each request came in and when it was answered. `pick(keys)` chooses the keys to fold."""

    name = "gated"

    def __init__(self, pick, *, max_wait_s: float = 30.0):
        self.gate = threading.Event()
        self.pick = pick
        self.max_wait_s = max_wait_s
        self.requests: list[ThinkRequest] = []
        self.asked: list[float] = []
        self.answered: list[float] = []

    def think(self, request: ThinkRequest) -> ThinkResult:
        self.requests.append(request)
        self.asked.append(time.perf_counter())
        self.gate.wait(self.max_wait_s)
        user = request.messages[-1]["content"]
        body = user.split("Movable items, oldest first:\n", 1)[1].rsplit("\nAnswer with", 1)[0]
        keys = [line.strip().split(" | ")[0] for line in body.splitlines() if " | " in line]
        first, last = self.pick(keys)
        self.answered.append(time.perf_counter())
        text = json.dumps({"actions": [{"op": "fold", "from": first, "to": last}]})
        return ThinkResult(text=text, model=self.name, tokens_in=len(user.split()), tokens_out=12, seconds=0.01)

    async def athink(self, request: ThinkRequest) -> ThinkResult:
        return await asyncio.to_thread(self.think, request)


def _oldest_half(keys):
    return keys[0], keys[len(keys) // 2]


def _call_points(history, start=20):
    return [n for n in range(start, len(history)) if history[n]["role"] == "assistant"]


class _Driver:
    """prepare() or aprepare() on one session, timed: the agent's added wait per round."""

    def __init__(self, session: MemorySession, mode: str):
        self.session, self.mode = session, mode
        self.loop = asyncio.new_event_loop() if mode == "async" else None
        self.waits: list[float] = []

    def __call__(self, messages):
        t0 = time.perf_counter()
        if self.loop is None:
            self.session.prepare(messages)
        else:
            self.loop.run_until_complete(self.session.aprepare(messages))
        self.waits.append(time.perf_counter() - t0)
        return self.session.last

    def close(self):
        self.session.close()
        if self.loop is not None:
            self.loop.close()


def _session(tmp_path, thinker, name):
    policy = ThinkerPolicy(budget_tokens=BUDGET, keep_recent_rounds=3)
    return MemorySession(Store(tmp_path / f"{name}.db"), name, policy=policy, thinker=thinker, background=True)


def _replayed(tmp_path, name):
    return MemorySession(Store(tmp_path / f"{name}.db"), name, policy=ThinkerPolicy(budget_tokens=BUDGET,
                                                                                    keep_recent_rounds=3))


def _decisions(stats):
    return [a for a in stats.actions if a["kind"] == "decision"]


def _start(tmp_path, name, mode):
    """A gated thinker that folds the oldest half, its background session, a timed driver, the history."""
    thinker = GatedThinker(_oldest_half)
    session = _session(tmp_path, thinker, name)
    history = synthetic_history(80, output_chars=300)
    return thinker, session, _Driver(session, mode), history, _call_points(history)


def _wait_answered(thinker, n=1, timeout=10.0):
    end = time.perf_counter() + timeout
    while len(thinker.answered) < n and time.perf_counter() < end:
        time.sleep(0.01)
    assert len(thinker.answered) >= n
    time.sleep(0.05)  # the worker hands the result to its future


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_hard_budget_does_not_wait_and_a_late_decision_is_logged_stale(tmp_path, mode):
    thinker, session, drive, history, points = _start(tmp_path, f"stale-{mode}", mode)
    pending_round = None
    for i, n in enumerate(points):
        stats = drive(history[:n])
        pending = [d for d in _decisions(stats) if d.get("reason") == "decision pending"]
        if pending:
            pending_round = i
            break
    assert pending_round is not None, "the view never reached the hard budget while the decision was pending"
    assert thinker.requests and not thinker.answered  # the model had not answered: nobody waited for it
    (d,) = pending
    assert d["fallback"] and not d["valid"] and d["applied"] == 0 and d["background"] is True
    assert stats.thinker_ms == 0
    folds = [a for a in stats.actions if a["kind"] == "fold"]
    assert folds and all("fallback: decision pending" in a["reason"] for a in folds)
    assert session.view.tokens <= BUDGET
    assert max(drive.waits) < 2.0, drive.waits  # bookkeeping only (generous for a shared 2-core machine)
    # the model now answers about the view it saw: the oldest half, which the budget rule has folded meanwhile
    thinker.gate.set()
    _wait_answered(thinker)
    stats = drive(history[:points[pending_round + 1]])
    (late,) = _decisions(stats)
    assert late["stale_decision"] is True and late["applied"] == 0 and late["stale"]
    assert late["valid"] is True  # it was valid on the view the model was shown
    assert late["asked_round"] < stats.round and late["rounds_late"] >= 1
    assert not [a for a in stats.actions if a["kind"] == "fold" and a["reason"] == "thinker decision"]
    drive.close()
    session.view.validate()
    assert _replayed(tmp_path, f"stale-{mode}").view.render() == session.view.render()


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_late_decision_still_valid_is_applied(tmp_path, mode):
    thinker, session, drive, history, points = _start(tmp_path, f"late-{mode}", mode)
    asked_at = None
    for i, n in enumerate(points):
        drive(history[:n])
        if thinker.requests and asked_at is None:
            asked_at = i
        if asked_at is not None and i >= asked_at + 2:  # two rounds later, still under the hard budget
            break
    assert asked_at is not None and session.view.tokens <= BUDGET
    assert not thinker.answered
    thinker.gate.set()
    _wait_answered(thinker)
    stats = drive(history[:points[i + 1]])
    (d,) = _decisions(stats)
    assert d["valid"] and d["applied"] == 1 and not d["stale"] and not d.get("stale_decision")
    assert d["rounds_late"] >= 2 and not d["fallback"]
    (fold,) = [a for a in stats.actions if a["kind"] in ("fold", "summarize")]
    assert fold["reason"] == "thinker decision"
    drive.close()
    session.view.validate()
    assert _replayed(tmp_path, f"late-{mode}").view.render() == session.view.render()


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_slow_model_never_adds_its_latency_to_a_round(tmp_path, mode):
    """The model takes 0.6 s per decision, the agent 0.05 s per round: the view crosses the budget many times
    while a decision is pending; every round stays fast and within the budget, and every decision is logged."""

    class SlowThinker(GatedThinker):
        def think(self, request):
            self.gate.clear()
            threading.Timer(0.6, self.gate.set).start()
            return super().think(request)

    thinker = SlowThinker(lambda keys: (keys[0], keys[len(keys) // 2]))
    session = _session(tmp_path, thinker, f"slow-{mode}")
    drive = _Driver(session, mode)
    history = synthetic_history(120, output_chars=300)
    log = []
    for n in _call_points(history):
        log.append(drive(history[:n]))
        assert session.view.tokens <= BUDGET
        time.sleep(0.05)
    drive.close()
    decisions = [d for s in log for d in _decisions(s)]
    pending = [d for d in decisions if d.get("reason") == "decision pending"]
    arrived = [d for d in decisions if "asked_round" in d]
    assert pending and arrived, (len(pending), len(arrived))
    assert all(d["applied"] > 0 or d.get("stale_decision") for d in arrived)
    assert sorted(drive.waits)[int(0.95 * (len(drive.waits) - 1))] < 0.5  # p95 added wait, not the model's 0.6 s
    assert all(s.thinker_ms == 0 for s in log)
    session.view.validate()
    assert _replayed(tmp_path, f"slow-{mode}").view.render() == session.view.render()


class FoldGatedThinker(GatedThinker):
    """Decides at once (fold the oldest half); its thinking folds wait for `fold_gate`."""

    def __init__(self):
        super().__init__(_oldest_half)
        self.gate.set()
        self.fold_gate = threading.Event()
        self.fold_requests: list[ThinkRequest] = []

    def think(self, request):
        if request.purpose == "policy":
            return super().think(request)
        self.fold_requests.append(request)
        self.fold_gate.wait(self.max_wait_s)
        return ThinkResult(text="Notes: invoices read; amounts noted.", model=self.name, seconds=0.01)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_at_the_hard_budget_a_ready_decision_is_applied_before_its_thinking_folds(tmp_path, mode):
    """The decision is in, its thinking fold is not: at the hard budget the model's choice is applied now (its
    folds extractive) instead of the budget rule's; the thinking fold that ends later is dropped, not applied twice."""
    thinker = FoldGatedThinker()
    policy = ThinkerPolicy(budget_tokens=BUDGET, keep_recent_rounds=3, fold_mode="think")
    session = MemorySession(Store(tmp_path / f"early-{mode}.db"), "e", policy=policy, thinker=thinker,
                            background=True)
    drive = _Driver(session, mode)
    history = synthetic_history(80, output_chars=300)
    points = _call_points(history)
    early = None
    for i, n in enumerate(points):
        stats = drive(history[:n])
        early = next((d for d in _decisions(stats) if d.get("at_hard_budget")), None)
        if early is not None:
            break
        if thinker.answered:
            time.sleep(0.02)  # let the worker publish the decision
    assert early is not None, "the decision was never applied at the hard budget"
    assert thinker.fold_requests and not thinker.fold_gate.is_set()  # its thinking fold was still running
    assert early["valid"] and early["applied"] == 1 and not early["fallback"]
    (fold,) = [a for a in stats.actions if a["kind"] == "fold" and a["reason"].startswith("thinker decision")]
    assert "no thinking fold of this span ready" in fold["reason"]
    assert session.view.tokens <= BUDGET and max(drive.waits) < 2.0
    thinker.fold_gate.set()
    time.sleep(0.2)
    stats = drive(history[:points[i + 1]])
    assert any("thinking folds dropped" in r for r in stats.rejected)
    assert not _decisions(stats) and not [a for a in stats.actions if a["kind"] == "summarize"]
    drive.close()
    session.view.validate()
    again = MemorySession(Store(tmp_path / f"early-{mode}.db"), "e", policy=ThinkerPolicy(budget_tokens=BUDGET,
                                                                                          keep_recent_rounds=3))
    assert again.view.render() == session.view.render()
