"""Several processes on one session, opening a fresh database at once, and kill -9 at random moments.

Real subprocesses (tests/session_worker.py) against a real SQLite file and the PostgreSQL server the test command
starts. After every kill: each acknowledged message is stored byte-identical, every branch rebuilds into a valid
view, and the agent continues from the history it had saved (one reply behind the store, at worst)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from agentmem.policies import NoOpPolicy
from agentmem.session import MemorySession
from agentmem.store import Store
from branching import check_tree

WORKER = Path(__file__).resolve().parent / "session_worker.py"
FIGURES: dict[str, int] = {}  # printed at the end of the session by the fault test (see test output with -s)


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request, tmp_path):
    if request.param == "sqlite":
        return str(tmp_path / "shared.db")
    return request.getfixturevalue("pg_url")


def _spawn(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(WORKER), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def _acked(state_dir: Path) -> list[str]:
    out: list[str] = []
    path = state_dir / "acks.jsonl"
    if not path.exists():
        return out
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            payload = json.loads(line)["payload"]
        except ValueError:  # the line the kill cut short was never acknowledged
            continue
        out.extend(payload if isinstance(payload, list) else [payload])
    return out


def _check_acked(store: Store, session_id: str, state_dirs: list[Path]) -> int:
    stored = {s.payload for s in store.archive(session_id)}
    acked = [p for d in state_dirs for p in _acked(d)]
    missing = [p for p in acked if p not in stored]
    assert not missing, f"{len(missing)} acknowledged messages are not stored byte-identical: {missing[:2]}"
    return len(acked)


@pytest.mark.slow
def test_processes_share_one_session(store_url, tmp_path):
    """Two agent processes (each its own conversation, retrying every third call) and a reader process that
    keeps reopening the session, all at once on one session id."""
    sid = "mp-" + uuid.uuid4().hex[:10]
    dirs = [tmp_path / f"w{i}" for i in range(2)]
    agents = [_spawn("agent", store_url, sid, f"w{i}", "6", str(d)) for i, d in enumerate(dirs)]
    reader = _spawn("reader", store_url, sid, "6")
    outs = [p.communicate(timeout=240) for p in agents + [reader]]
    for p, (out, err) in zip(agents + [reader], outs, strict=True):
        assert p.returncode == 0, err[-3000:]
    assert int(outs[-1][0].split("opened ")[1]) > 0
    store = Store(store_url)
    try:
        n = _check_acked(store, sid, dirs)
        figures = check_tree(store, sid)
        for d in dirs:  # every worker's saved history is a stored path
            history = json.loads((d / "history.json").read_text())
            from agentmem.messages import parse_message

            want = [parse_message(m).fingerprint() for m in history[:-1]]
            assert any([s.message.fingerprint() for s in store.load_messages(sid, branch=b.branch)][:len(want)]
                       == want for b in store.branches(sid))
        FIGURES["processes"] = FIGURES.get("processes", 0) + 3
        FIGURES["messages_checked"] = FIGURES.get("messages_checked", 0) + n + figures["messages_checked"]
        FIGURES["forks"] = FIGURES.get("forks", 0) + figures["branches"] - 1
    finally:
        store.close()


@pytest.mark.slow
def test_processes_opening_a_fresh_database_at_once(fresh_db_url):
    start = time.time() + 2.5  # after every process has imported agentmem
    procs = [_spawn("open", fresh_db_url, str(start)) for _ in range(5)]
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0 and "opened" in out, err[-3000:]
    store = Store(fresh_db_url)
    assert store.sessions() == []
    store.close()
    FIGURES["processes"] = FIGURES.get("processes", 0) + len(procs)


@pytest.mark.slow
def test_kill_9_at_random_moments_loses_nothing(store_url, tmp_path):
    """An agent process is killed (SIGKILL) at a random moment of ingest, fold, fork, record or save, then
    restarted from its own saved history, again and again; finally it runs to the end."""
    kills = int(os.environ.get("AGENTMEM_FAULT_KILLS", "3"))  # more for the figures: AGENTMEM_FAULT_KILLS=20
    # AGENTMEM_FAULT_ROUNDS=200 (the agent must still be running when the kills come)
    rng = random.Random(int(os.environ.get("AGENTMEM_FAULT_SEED", "12")))
    sid = "kill-" + uuid.uuid4().hex[:10]
    state = tmp_path / "agent"
    phases: dict[str, int] = {}
    checked = 0
    k, finished = 0, False
    while not finished:
        p = _spawn("agent", store_url, sid, "k", os.environ.get("AGENTMEM_FAULT_ROUNDS", "60"), str(state))
        assert p.stdout is not None and p.stderr is not None
        if p.stdout.readline().strip() != "ready":
            raise AssertionError(p.communicate()[1][-3000:])
        if k < kills:
            time.sleep(rng.uniform(0.02, 0.5))
            phase = (state / "phase").read_text()
            p.send_signal(signal.SIGKILL)
            p.wait()
            finished = phase == "done"  # it ran to the end before the kill came
            if not finished:
                phases[phase] = phases.get(phase, 0) + 1
        else:
            out, err = p.communicate(timeout=300)
            assert p.returncode == 0, err[-3000:]
            finished = True
        p.stdout.close()
        p.stderr.close()
        k += 1
        store = Store(store_url)
        try:
            checked += _check_acked(store, sid, [state])
            reopened = MemorySession(store, sid, policy=NoOpPolicy())  # the view rebuilds after the kill
            reopened.view.validate(allow_open_tail=True)
            if finished:
                checked += check_tree(store, sid)["messages_checked"]
            forks = len(store.branches(sid)) - 1
        finally:
            store.close()
    assert (state / "phase").read_text() == "done"
    FIGURES["kills"] = FIGURES.get("kills", 0) + sum(phases.values())
    FIGURES["messages_checked"] = FIGURES.get("messages_checked", 0) + checked
    FIGURES["forks"] = FIGURES.get("forks", 0) + forks
    backend = "postgresql" if store_url.startswith("postgres") else "sqlite"
    print(f"\nkill -9 on {backend}: {sum(phases.values())} kills by phase {phases}; {forks} forks; "
          f"{checked} acknowledged/stored messages checked, none lost")
