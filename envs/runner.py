"""Episode runner: agent <-> memory <-> environment, with per-round records, a summary and a token plot.

The runner keeps the agent's FULL raw transcript itself. Each round it hands that transcript to the memory's
``completion`` (which builds the managed view and calls the agent), appends the returned assistant message,
executes its tool calls against the environment (``recall_memory`` goes to the memory), and appends the tool
results - until ``supervisor.complete_task`` has been called or ``max_rounds`` is reached.

Any memory works that looks like this (``AgentMemory`` does; ``PassThroughMemory`` is the no-memory baseline)::

    memory.completion(model=..., messages=[...], tools=[...]) -> response   # litellm-style dict or object
    memory.execute_recall(arguments) -> str     # optional (or .recall)
    memory.recall_tool_schema                   # optional: a "recall_memory" tool it adds itself
    memory.last_round -> {"raw_tokens", "view_tokens", "actions", "bookkeeping_ms"}   # optional (or .stats())

The messages a memory gets carry an ``id`` ("<task id>.<position>", stable across rounds, see `with_stable_ids`);
a memory keys on it and does not pass it on to the model (AgentMemory, PassThroughMemory and HistoryViewMemory
strip it).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Protocol, Sequence

from agentmem.messages import seeded_message_ids

__all__ = [
    "EpisodeResult",
    "HistoryViewMemory",
    "MemoryLike",
    "PassThroughMemory",
    "default_count_tokens",
    "make_agent",
    "plot_tokens",
    "run_episode",
    "run_tasks",
    "with_stable_ids",
    "RECALL_TOOL",
]

Completion = Callable[..., Any]

RECALL_TOOL = {"type": "function", "function": {
    "name": "recall_memory",
    "description": "Search the archived (folded or evicted) parts of this conversation and bring matching "
                   "messages back.",
    "parameters": {"type": "object", "properties": {"query": {"type": "string", "description": "search words"}},
                   "required": ["query"]}}}


class MemoryLike(Protocol):
    def completion(self, *, model: str, messages: list[dict], tools: list[dict] | None = None,
                   **kw: Any) -> Any: ...


def with_stable_ids(messages: Sequence[dict], task_id: str) -> list[dict]:
    """The transcript as handed to a memory: each message with the id ``<task id>.<position>``.

    Ids are part of what a memory shows (block headers, recall answers), so random ids would make two runs of the
    same task differ in token counts, fold and page boundaries, and sometimes in the outcome; position ids are
    stable because the runner's transcript only grows. A message that has an id keeps it."""
    return [m if m.get("id") else {**m, "id": f"{task_id}.{i}"} for i, m in enumerate(messages)]


def _without_ids(messages: Sequence[dict]) -> list[dict]:
    return [{k: v for k, v in m.items() if k != "id"} if "id" in m else m for m in messages]


class PassThroughMemory:
    """No memory management: the agent sees the full transcript. Recall has nothing archived to search."""

    def __init__(self, agent: Completion):
        self.agent = agent
        self.last_round: dict = {}

    def completion(self, *, model: str, messages: list[dict], tools: list[dict] | None = None, **kw: Any) -> Any:
        t0 = time.perf_counter()
        resp = self.agent(model=model, messages=_without_ids(messages), tools=tools, **kw)
        self.last_round = {"actions": [], "bookkeeping_ms": 0.0, "agent_ms": (time.perf_counter() - t0) * 1000}
        return resp

    def execute_recall(self, arguments: dict) -> str:
        return "[agentmem: recalled] nothing archived: the whole conversation is already in view."


class HistoryViewMemory:
    """A memory given as a function of the history (``history -> (view, ms, actions)``), e.g. langchain's
    ``trim_messages`` or langmem's ``summarize_messages`` as bench/benchmark.py wraps them for replays.

    Such libraries keep no archive, so this memory offers no recall tool. `make_view_fn(first_history)` builds the
    function once per task (sizes may depend on the task's system prompt); messages without an id get the stable
    id ``h<index>`` (the runner's history only grows), which the view function may key on; ids are removed before
    the agent sees the view. View and raw sizes are counted with `count_message` (per message, cached by id)."""

    def __init__(self, agent: Completion, make_view_fn: Callable[[list[dict]], Callable[[list[dict]], Any]],
                 count_message: Callable[[dict], int]):
        self.agent = agent
        self.make_view_fn = make_view_fn
        self.count_message = count_message
        self.view_fn: Callable[[list[dict]], Any] | None = None
        self._sizes: dict[str, int] = {}
        self.last_round: dict = {}

    def _size(self, m: dict) -> int:
        key = m.get("id")
        if key is None or key not in self._sizes:
            n = self.count_message({k: v for k, v in m.items() if k != "id"})
            if key is None:
                return n
            self._sizes[key] = n
        return self._sizes[key]

    def completion(self, *, model: str, messages: list[dict], tools: list[dict] | None = None, **kw: Any) -> Any:
        history = [m if "id" in m else {**m, "id": f"h{i}"} for i, m in enumerate(messages)]
        if self.view_fn is None:
            self.view_fn = self.make_view_fn(history)
        t0 = time.perf_counter()
        view, _ms, actions = self.view_fn(history)
        bookkeeping = (time.perf_counter() - t0) * 1000
        raw_tokens = sum(self._size(m) for m in history)
        view_tokens = sum(self._size(m) for m in view)
        t1 = time.perf_counter()
        resp = self.agent(model=model, messages=_without_ids(view), tools=tools, **kw)
        self.last_round = {"raw_tokens": raw_tokens, "view_tokens": view_tokens, "actions": list(actions),
                           "bookkeeping_ms": bookkeeping, "agent_ms": (time.perf_counter() - t1) * 1000}
        return resp


def _fallback_count(messages: Sequence[dict]) -> int:
    return len(json.dumps(list(messages), ensure_ascii=False, default=str)) // 4


def default_count_tokens(messages: Sequence[dict]) -> int:
    """agentmem's offline tiktoken counter when available, else len(json) / 4."""
    return _resolve_counter(None)(messages)


def _resolve_counter(count_tokens: Callable[[Sequence[dict]], int] | None) -> Callable[[Sequence[dict]], int]:
    if count_tokens is not None:
        return count_tokens
    try:
        from agentmem.tokens import TokenCounter  # type: ignore

        tc = TokenCounter()
        tc.messages([{"role": "user", "content": "probe"}])
        return lambda msgs: int(tc.messages(list(msgs)))
    except Exception:  # noqa: BLE001 - any import/runtime problem: fall back
        pass
    try:
        from agentmem.tokens import count_tokens as ct  # type: ignore

        ct([{"role": "user", "content": "probe"}])
        return lambda msgs: int(ct(list(msgs)))
    except Exception:  # noqa: BLE001
        return _fallback_count


def _to_dict(resp: Any) -> dict:
    if isinstance(resp, dict):
        return resp
    for attr in ("model_dump", "dict", "to_dict"):
        fn = getattr(resp, attr, None)
        if callable(fn):
            try:
                return fn()
            except Exception:  # noqa: BLE001
                continue
    return json.loads(json.dumps(resp, default=lambda o: getattr(o, "__dict__", str(o))))


def _assistant_message(resp: Any) -> dict:
    """The assistant message of a response, normalised to a plain OpenAI dict."""
    d = _to_dict(resp)
    msg = dict(((d.get("choices") or [{}])[0] or {}).get("message") or {})
    out: dict[str, Any] = {"role": "assistant", "content": msg.get("content")}
    calls = []
    for i, c in enumerate(msg.get("tool_calls") or []):
        c = _to_dict(c) if not isinstance(c, dict) else c
        fn = c.get("function") or {}
        fn = _to_dict(fn) if not isinstance(fn, dict) else fn
        args = fn.get("arguments")
        if not isinstance(args, str):
            args = json.dumps(args if args is not None else {})
        calls.append({"id": c.get("id") or f"call_{i}", "type": "function",
                      "function": {"name": fn.get("name") or "", "arguments": args}})
    if calls:
        out["tool_calls"] = calls
    return out


def _stats(memory: Any) -> dict:
    st = getattr(memory, "last_round", None)
    if st is None and callable(getattr(memory, "stats", None)):
        st = memory.stats()
    if callable(st):
        st = st()
    return dict(st or {})


def _recall(memory: Any, arguments: dict) -> str:
    for name in ("execute_recall", "recall"):
        fn = getattr(memory, name, None)
        if callable(fn):
            out = fn(arguments)
            return out if isinstance(out, str) else json.dumps(out, ensure_ascii=False, default=str)
    return json.dumps({"status": "error", "error": {"type": "UnknownTool",
                                                    "message": "recall_memory is not available (no memory)."}})


def _action_kind(a: Any) -> str:
    if isinstance(a, dict):
        return str(a.get("type") or a.get("kind") or a.get("action") or a.get("name") or "")
    return str(getattr(a, "type", None) or getattr(a, "kind", None) or a)


@dataclass
class EpisodeResult:
    task_id: str
    records: list[dict]
    summary: dict
    messages: list[dict] = field(repr=False, default_factory=list)


def make_agent(agent_spec: str | Completion, task: Any, env: Any = None) -> tuple[Completion, str]:
    """'scripted' -> the task's ScriptedAgent; a litellm model string -> LLMAgent; a callable -> itself."""
    if callable(agent_spec):
        return agent_spec, getattr(agent_spec, "name", "callable")
    if agent_spec == "scripted":
        maker = getattr(env, "scripted_agent", None)
        return (maker(task) if maker else task.scripted_agent()), "scripted"
    from .agents import LLMAgent

    return LLMAgent(agent_spec), agent_spec


def run_episode(
    task: Any,
    agent: Completion,
    memory: Any = None,
    *,
    model: str = "scripted",
    max_rounds: int = 400,
    count_tokens: Callable[[Sequence[dict]], int] | None = None,
    on_round: Callable[[dict], None] | None = None,
    keep_messages: bool = True,
) -> EpisodeResult:
    """Run one task to completion (or `max_rounds` assistant turns) and evaluate it.

    Replies stored without an id get ids seeded by the task id, so two runs of a task under one policy are
    identical (see `agentmem.messages.seeded_message_ids`)."""
    with seeded_message_ids(task.task_id):
        return _run_episode(task, agent, memory, model=model, max_rounds=max_rounds, count_tokens=count_tokens,
                            on_round=on_round, keep_messages=keep_messages)


def _run_episode(task: Any, agent: Completion, memory: Any, *, model: str, max_rounds: int,
                 count_tokens: Callable[[Sequence[dict]], int] | None, on_round: Callable[[dict], None] | None,
                 keep_messages: bool) -> EpisodeResult:
    counter = _resolve_counter(count_tokens)
    mem = memory if memory is not None else PassThroughMemory(agent)
    tools = list(task.tools)
    has_recall = callable(getattr(mem, "execute_recall", None)) or callable(getattr(mem, "recall", None))
    if has_recall and getattr(mem, "recall_tool_schema", None) is None and not isinstance(mem, PassThroughMemory):
        tools.append(RECALL_TOOL)  # a memory that can recall but does not add its own tool schema
    messages: list[dict] = task.initial_messages()
    raw_running = sum(counter([m]) for m in messages)
    records: list[dict] = []
    t_start = time.perf_counter()
    rounds = 0
    nudges = 0
    while rounds < max_rounds and not task.done:
        rounds += 1
        t0 = time.perf_counter()
        resp = mem.completion(model=model, messages=with_stable_ids(messages, task.task_id), tools=tools)
        wall_ms = (time.perf_counter() - t0) * 1000
        st = _stats(mem)
        msg = _assistant_message(resp)
        messages.append(msg)
        raw_tokens = int(st.get("raw_tokens") or raw_running)
        view_tokens = int(st.get("view_tokens") or raw_tokens)
        actions = list(st.get("actions") or [])
        rec: dict[str, Any] = {
            "task_id": task.task_id, "round": rounds, "raw_tokens": raw_tokens, "view_tokens": view_tokens,
            "actions": [a if isinstance(a, (dict, str, int, float)) else str(a) for a in actions],
            "folds": sum(_action_kind(a).lower() in ("fold", "summarize") for a in actions),
            "ms": round(wall_ms, 3), "bookkeeping_ms": round(float(st.get("bookkeeping_ms") or 0.0), 3),
            "tools": [], "errors": 0, "recalls": 0,
        }
        raw_running += counter([msg])
        calls = msg.get("tool_calls") or []
        if not calls:
            nudges += 1
            if nudges > 3:
                rec["stopped"] = "no tool call"
                records.append(rec)
                break
            nudge = {"role": "user", "content": "Continue with the task by calling a tool. When it is done, call "
                                                "call_api(app='supervisor', api='complete_task')."}
            messages.append(nudge)
            raw_running += counter([nudge])
        for c in calls:
            name = c["function"]["name"]
            try:
                args = json.loads(c["function"]["arguments"] or "{}")
            except ValueError:
                args = c["function"]["arguments"]
            if name == "recall_memory":
                content = _recall(mem, args if isinstance(args, dict) else {"query": str(args)})
                rec["recalls"] += 1
                rec["tools"].append("recall_memory")
            else:
                content = task.step(name, args)
                label = name
                if name == "call_api" and isinstance(args, dict):
                    label = f"{args.get('app')}.{args.get('api')}"
                rec["tools"].append(label)
                if '"status": "error"' in content[:400] or '"status":"error"' in content[:400]:
                    rec["errors"] += 1
            tmsg = {"role": "tool", "tool_call_id": c["id"], "content": content}
            messages.append(tmsg)
            raw_running += counter([tmsg])
        records.append(rec)
        if on_round is not None:
            on_round(rec)
    wall = time.perf_counter() - t_start
    ev = task.evaluate()
    views = [r["view_tokens"] for r in records] or [0]
    raws = [r["raw_tokens"] for r in records] or [0]
    summary = {
        "task_id": task.task_id,
        "scenario": getattr(task, "scenario", task.task_id),
        "difficulty": getattr(task, "difficulty", ""),
        "success": ev.success,
        "score": round(ev.score, 4),
        "checks": ev.checks,
        "answer": ev.answer,
        "expected_answer": ev.expected_answer,
        "completed": bool(task.done),
        "rounds": rounds,
        "peak_view_tokens": max(views),
        "mean_view_tokens": round(sum(views) / len(views), 1),
        "peak_raw_tokens": max(raws),
        "final_raw_tokens": raw_running,
        "recalls": sum(r["recalls"] for r in records),
        "folds": sum(r["folds"] for r in records),
        "errors": sum(r["errors"] for r in records),
        "bookkeeping_ms": round(sum(r["bookkeeping_ms"] for r in records), 2),
        "wall_s": round(wall, 4),
    }
    given_up = getattr(agent, "given_up", None)  # an agent that reports look-ups it went on without (scripted)
    if given_up is not None:
        summary["lookups_given_up"] = list(given_up)
    return EpisodeResult(task.task_id, records, summary, messages if keep_messages else [])


def aggregate(summaries: list[dict]) -> dict:
    """TGC: share of tasks solved. SGC: share of scenarios (templates) whose every task was solved."""
    if not summaries:
        return {"n_tasks": 0, "tgc": 0.0, "sgc": 0.0}
    by_scen: dict[str, list[bool]] = {}
    for s in summaries:
        by_scen.setdefault(s["scenario"], []).append(bool(s["success"]))

    def block(ss: list[dict]) -> dict:
        scen: dict[str, list[bool]] = {}
        for s in ss:
            scen.setdefault(s["scenario"], []).append(bool(s["success"]))
        rounds = sorted(s["rounds"] for s in ss)
        return {
            "n_tasks": len(ss),
            "n_scenarios": len(scen),
            "tgc": round(100.0 * sum(s["success"] for s in ss) / len(ss), 2),
            "sgc": round(100.0 * sum(all(v) for v in scen.values()) / len(scen), 2),
            "mean_score": round(sum(s["score"] for s in ss) / len(ss), 4),
            "rounds_mean": round(sum(rounds) / len(rounds), 1),
            "rounds_median": rounds[len(rounds) // 2],
            "rounds_max": rounds[-1],
            "tasks_80plus_rounds": sum(r >= 80 for r in rounds),
            "peak_view_tokens": max(s["peak_view_tokens"] for s in ss),
            "mean_view_tokens": round(sum(s["mean_view_tokens"] for s in ss) / len(ss), 1),
            "peak_raw_tokens": max(s["peak_raw_tokens"] for s in ss),
            "recalls": sum(s["recalls"] for s in ss),
            "lookups_given_up": sum(len(s.get("lookups_given_up") or ()) for s in ss),
            "folds": sum(s["folds"] for s in ss),
            "wall_s": round(sum(s["wall_s"] for s in ss), 3),
        }

    out = block(summaries)
    diffs = sorted({s["difficulty"] for s in summaries if s.get("difficulty")})
    out["by_difficulty"] = {d: block([s for s in summaries if s["difficulty"] == d]) for d in diffs}
    return out


def plot_tokens(records: list[dict], path: str | Path, title: str = "") -> Path:
    """PNG of context tokens per round: managed view vs unmanaged transcript (every task, and the median)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_task: dict[str, list[dict]] = {}
    for r in records:
        by_task.setdefault(r["task_id"], []).append(r)
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=110)
    if len(by_task) == 1:
        rs = next(iter(by_task.values()))
        ax.plot([r["round"] for r in rs], [r["raw_tokens"] for r in rs], label="unmanaged (full transcript)",
                color="tab:red")
        ax.plot([r["round"] for r in rs], [r["view_tokens"] for r in rs], label="managed view", color="tab:blue")
    else:
        for rs in by_task.values():  # every task, faint
            xs = [r["round"] for r in rs]
            ax.plot(xs, [r["raw_tokens"] for r in rs], color="tab:red", alpha=0.25, lw=0.8)
            ax.plot(xs, [r["view_tokens"] for r in rs], color="tab:blue", alpha=0.25, lw=0.8)
        n = max(len(rs) for rs in by_task.values())
        xs, raw_m, view_m = [], [], []
        for i in range(n):  # the median over tasks, while at least half of them are still running
            rows = [rs[i] for rs in by_task.values() if len(rs) > i]
            if 2 * len(rows) < len(by_task):
                break
            xs.append(i + 1)
            raw_m.append(sorted(r["raw_tokens"] for r in rows)[len(rows) // 2])
            view_m.append(sorted(r["view_tokens"] for r in rows)[len(rows) // 2])
        ax.plot(xs, raw_m, label=f"unmanaged (median of {len(by_task)} tasks; faint: each task)", color="tab:red")
        ax.plot(xs, view_m, label="managed view (median; faint: each task)", color="tab:blue")
    ax.set_xlabel("round")
    ax.set_ylabel("context tokens")
    ax.set_title(title or "context tokens per round")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def run_tasks(
    env_name: str = "appworld-lite",
    task_ids: str | Iterable[str] = "all",
    agent: str | Completion = "scripted",
    memory_factory: Callable[[Completion], Any] | None = None,
    out_dir: str | Path | None = None,
    *,
    max_rounds: int = 400,
    model: str | None = None,
    count_tokens: Callable[[Sequence[dict]], int] | None = None,
    progress: bool = True,
    policy_name: str = "",
    difficulty: str | None = None,
    save_transcripts: bool = False,
) -> dict:
    """Run tasks of an environment and write rounds.jsonl, summary.json and tokens.png under `out_dir`.

    env_name        registered environment name (see ``agentmem.envs.list_envs()``)
    task_ids        "all", one id, a comma-separated string, or a list of ids
    agent           "scripted", a litellm model string (-> LLMAgent), or a completion callable
    memory_factory  ``agent -> memory`` (e.g. ``lambda a: AgentMemory(completion=a, policy="budget", ...)``);
                    None runs without memory management (PassThroughMemory)
    Returns the summary dict (also written to summary.json).
    """
    from . import get_env

    env = get_env(env_name)
    if isinstance(task_ids, str):
        ids = env.task_ids(difficulty) if task_ids == "all" else [t.strip() for t in task_ids.split(",") if t.strip()]
    else:
        ids = list(task_ids)
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    counter = _resolve_counter(count_tokens)
    agent_label = agent if isinstance(agent, str) else getattr(agent, "name", "callable")
    summaries: list[dict] = []
    all_records: list[dict] = []
    jsonl = open(out / "rounds.jsonl", "w") if out is not None else None
    t0 = time.perf_counter()

    prog = None
    if progress:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        prog = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), TextColumn("{task.fields[status]}"),
                        console=Console(stderr=True), transient=False)
        prog.start()
        bar = prog.add_task("tasks", total=len(ids), status="")
    try:
        n_ok = 0
        for i, tid in enumerate(ids):
            task = env.load(tid)
            ag, _ = make_agent(agent, task, env)
            mem = memory_factory(ag) if memory_factory is not None else PassThroughMemory(ag)
            state = {"folds": 0}

            def on_round(rec: dict, tid: str = tid, state: dict = state, n_ok: int = n_ok, i: int = i) -> None:
                state["folds"] += rec["folds"]
                if jsonl is not None:
                    jsonl.write(json.dumps(rec, default=str) + "\n")
                if prog is not None:
                    prog.update(bar, description=f"{tid}", status=(
                        f"round {rec['round']} | view {rec['view_tokens']} tok | raw {rec['raw_tokens']} tok | "
                        f"folds {state['folds']} | solved {n_ok}/{i}"))

            res = run_episode(task, ag, mem, model=model or (agent if isinstance(agent, str) else "scripted"),
                              max_rounds=max_rounds, count_tokens=counter, on_round=on_round,
                              keep_messages=save_transcripts)
            n_ok += bool(res.summary["success"])
            summaries.append(res.summary)
            all_records.extend(res.records)
            if out is not None and save_transcripts:
                tdir = out / "transcripts"
                tdir.mkdir(exist_ok=True)
                (tdir / f"{tid}.json").write_text(json.dumps(res.messages, indent=1, default=str))
            if prog is not None:
                prog.update(bar, advance=1)
    finally:
        if prog is not None:
            prog.stop()
        if jsonl is not None:
            jsonl.close()
    summary = {
        "env": env_name,
        "agent": agent_label,
        "policy": policy_name,
        "max_rounds": max_rounds,
        "wall_s": round(time.perf_counter() - t0, 3),
        "aggregate": aggregate(summaries),
        "tasks": summaries,
    }
    if out is not None:
        (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
        if all_records:
            plot_tokens(all_records, out / "tokens.png",
                        title=f"{env_name} | {agent_label} | {policy_name or 'no memory'} | {len(ids)} task(s)")
    return summary
