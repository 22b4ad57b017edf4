"""A separate process on a shared session, for the multi-process and kill -9 tests.

    python tests/session_worker.py agent URL SESSION TAG ROUNDS STATE_DIR   # an agent loop (resumes STATE_DIR)
    python tests/session_worker.py reader URL SESSION SECONDS                # open the session again and again
    python tests/session_worker.py open URL START_AT                         # open a store at a wall-clock time

The agent acknowledges what agentmem confirmed: after prepare() returns, the stored form of every message it sent
(canonical JSON, exactly as written); after record_response() returns, the stored reply. It saves its own history
only after a whole round (so a kill between the reply and the save leaves it one reply behind the store), retries
every third call (a fork), and writes the phase it is in, so a kill can be attributed to ingest, fold, fork or save.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


def _append_line(path: Path, obj: object) -> None:
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(obj, ensure_ascii=False) + "\n")
        f.flush()


def _phase(path: Path, name: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(name)
    os.replace(tmp, path)  # never half-written when the kill comes


def agent(url: str, session_id: str, tag: str, rounds: int, state_dir: str) -> int:
    from agentmem.session import MemorySession
    from agentmem.store import Store
    from branching import SYSTEM, TASK, budget_policy, tool_reply, tool_result

    state = Path(state_dir)
    state.mkdir(parents=True, exist_ok=True)
    acks, phase_file, saved = state / "acks.jsonl", state / "phase", state / "history.json"
    _phase(phase_file, "start")
    history = json.loads(saved.read_text()) if saved.exists() else [
        SYSTEM, TASK, {"role": "user", "content": f"worker {tag} starts"}]
    done = sum(1 for m in history if m["role"] == "assistant")
    store = Store(url)
    s = MemorySession(store, session_id, policy=budget_policy(1500))
    print("ready", flush=True)
    calls = 0
    while done < rounds:
        calls += 1
        retry = calls % 3 == 0
        _phase(phase_file, "fork" if retry or s.message_count > len(history) else "ingest+fold")
        s.prepare(history)
        if retry:  # a bad answer is asked again: the first reply stays on its (now archived) branch
            first = s.record_response({"role": "assistant", "content": f"{tag}: a discarded answer {calls}"})
            _append_line(acks, {"payload": first.canonical_json()})
            _phase(phase_file, "fork")
            s.prepare(history)
        _append_line(acks, {"payload": [m.canonical_json() for m, _ in s._path[max(0, len(history) - 4):len(history)]]})
        _phase(phase_file, "record")
        reply = tool_reply(tag, done)
        stored = s.record_response(reply)
        _append_line(acks, {"payload": stored.canonical_json()})
        _phase(phase_file, "save")
        history += [reply, tool_result(reply)]
        done += 1
        tmp = saved.with_suffix(".tmp")
        tmp.write_text(json.dumps(history))
        os.replace(tmp, saved)
    _phase(phase_file, "done")
    store.close()
    print("done", flush=True)
    return 0


def reader(url: str, session_id: str, seconds: float) -> int:
    from agentmem.policies import NoOpPolicy
    from agentmem.session import MemorySession
    from agentmem.store import Store

    store = Store(url)
    opened, deadline = 0, time.time() + seconds
    print("ready", flush=True)
    while time.time() < deadline:
        if session_id in store.sessions():
            s = MemorySession(store, session_id, policy=NoOpPolicy())
            s.view.validate(allow_open_tail=True)
            opened += 1
        time.sleep(0.01)
    print(f"opened {opened}", flush=True)
    return 0


def open_store(url: str, start_at: float) -> int:
    from agentmem.store import Store

    time.sleep(max(0.0, start_at - time.time()))
    Store(url).close()
    print("opened", flush=True)
    return 0


if __name__ == "__main__":
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "agent":
        sys.exit(agent(args[0], args[1], args[2], int(args[3]), args[4]))
    if mode == "reader":
        sys.exit(reader(args[0], args[1], float(args[2])))
    if mode == "open":
        sys.exit(open_store(args[0], float(args[1])))
    sys.exit(f"unknown mode {mode!r}")
