"""Replay recorded agent runs through agentmem: how small would the context have been, and what was lost?

Loading accepts the common JSONL format of ../shared/data ({"id", "source", "messages", "meta"} per line) and
OpenAI chat format (one conversation per line: {"messages": [...]} or a bare list of messages; or a .json file
holding one conversation or a list of them). Anything else is a TrajectoryFormatError naming the line.

Replay is causal and runs the live code path: one AgentMemory per trajectory, and before each recorded assistant
turn t its session's `prepare(history[:t])` builds the view (exactly what `AgentMemory.completion` sends to the
model), then the recorded reply is stored with `record_response`, as `AgentMemory.completion` does with the
model's answer. Nothing after turn t is ever passed in, so truncating a trajectory cannot change an earlier view.
Every message gets a stable id (its own, or `m<index>`) and recorded replies keep theirs, so the block and stub
texts (which name ids) are byte-identical between runs.
"""

from __future__ import annotations

import json
import os
import platform
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from agentmem.messages import InvalidMessageError, parse_message, validate_history
from agentmem.metrics import CarriedValue, carried_values_by_round, prefix_reuse, retention, summarize_rounds
from agentmem.tokens import TokenCounter

__all__ = [
    "TrajectoryFormatError",
    "Trajectory",
    "load_trajectories",
    "iter_trajectories",
    "ReplayRound",
    "replay",
    "replay_views",
    "ViewFn",
    "run_replay",
    "plot_footprint",
    "machine_info",
]


class TrajectoryFormatError(ValueError):
    """A trajectory file (or one line of it) is not in a format replay understands."""


@dataclass
class Trajectory:
    """One recorded agent run: OpenAI-format message dicts (each with a stable "id") plus metadata."""

    id: str
    messages: list[dict[str, Any]]
    source: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_messages(cls, id: str, messages: Sequence[Any], *, source: str = "",
                      meta: Mapping[str, Any] | None = None) -> Trajectory:
        """Validate and normalize messages (OpenAI or flat tool-call dicts, Message, LangChain) into a trajectory."""
        return cls(id, _normalize(list(messages), where=f"trajectory {id!r}"), source, dict(meta or {}))

    @property
    def model(self) -> str | None:
        m = self.meta.get("model")
        return m if isinstance(m, str) and m else None

    def assistant_indices(self) -> list[int]:
        """Message index of every assistant turn: round t is the turn at assistant_indices()[t]."""
        return [i for i, m in enumerate(self.messages) if m["role"] == "assistant"]

    @property
    def rounds(self) -> int:
        return len(self.assistant_indices())

    def truncated(self, rounds: int) -> Trajectory:
        """The same run cut right after assistant turn `rounds - 1` (its tool results included)."""
        idx = self.assistant_indices()
        if rounds >= len(idx):
            return self
        return Trajectory(self.id, self.messages[: idx[rounds]], self.source, dict(self.meta))


# --- loading ----------------------------------------------------------------------------------------------------
def _normalize(raw_messages: Any, *, where: str) -> list[dict[str, Any]]:
    if not isinstance(raw_messages, list) or not raw_messages:
        raise TrajectoryFormatError(f"{where}: 'messages' must be a non-empty list of message objects")
    parsed = []
    for i, raw in enumerate(raw_messages):
        try:
            parsed.append(parse_message(raw, index=i, message_id=f"m{i:04d}"))
        except InvalidMessageError as exc:
            raise TrajectoryFormatError(f"{where}: {exc}") from None
    ids = [m.id for m in parsed]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise TrajectoryFormatError(f"{where}: duplicate message id {dup!r}")
    try:
        validate_history(parsed, allow_open_tail=True)
    except InvalidMessageError as exc:
        raise TrajectoryFormatError(f"{where}: {exc}") from None
    return [m.to_dict(with_id=True) for m in parsed]


def _trajectory(obj: Any, *, where: str, default_id: str) -> Trajectory:
    if isinstance(obj, list):  # a bare conversation: a list of messages
        if obj and not all(isinstance(m, Mapping) for m in obj):
            raise TrajectoryFormatError(f"{where}: a conversation list must hold message objects")
        return Trajectory(default_id, _normalize(obj, where=where))
    if not isinstance(obj, Mapping):
        raise TrajectoryFormatError(f"{where}: expected a conversation object with 'messages' "
                                    f"(or a list of messages), got {type(obj).__name__}")
    if "messages" not in obj:
        if "role" in obj:
            raise TrajectoryFormatError(f"{where}: this is a single message; expected one whole conversation per "
                                        "line ({\"messages\": [...]}) or a list of messages")
        keys = ", ".join(sorted(map(str, obj))[:8]) or "none"
        raise TrajectoryFormatError(f"{where}: no 'messages' key (keys: {keys}); expected the common format "
                                    "{\"id\", \"messages\", ...} or OpenAI chat format {\"messages\": [...]}")
    tid = obj.get("id")
    tid = str(tid) if isinstance(tid, (str, int)) and str(tid) else default_id
    meta = obj.get("meta") if isinstance(obj.get("meta"), Mapping) else {}
    meta = dict(meta)
    if "model" not in meta and isinstance(obj.get("model"), str):
        meta["model"] = obj["model"]
    if isinstance(obj.get("tools"), list):
        meta.setdefault("tools", obj["tools"])
    return Trajectory(tid, _normalize(obj["messages"], where=where), str(obj.get("source") or ""), meta)


def iter_trajectories(path: str | os.PathLike[str]) -> Iterator[Trajectory]:
    """Trajectories of a JSONL file (one per line) or a JSON file (one conversation or a list of them)."""
    p = Path(path)
    if not p.is_file():
        raise TrajectoryFormatError(f"{p}: no such file")
    stem = p.stem
    with p.open(encoding="utf-8") as fh:
        head = fh.read(1 << 16).lstrip()
    if not head:
        raise TrajectoryFormatError(f"{p}: the file is empty")
    whole: Any = None
    if p.suffix.lower() == ".json" or head.startswith("["):
        try:
            whole = json.loads(p.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            if p.suffix.lower() == ".json" and exc.msg != "Extra data":
                raise TrajectoryFormatError(f"{p}:{exc.lineno}: not valid JSON: {exc.msg}") from None
            whole = None  # JSON Lines after all
    if whole is not None:
        if isinstance(whole, list) and whole and all(isinstance(x, Mapping) and "role" in x for x in whole):
            yield _trajectory(whole, where=f"{p}", default_id=stem)
        elif isinstance(whole, list):
            for k, obj in enumerate(whole):
                yield _trajectory(obj, where=f"{p}: entry {k}", default_id=f"{stem}:{k}")
        else:
            yield _trajectory(whole, where=f"{p}", default_id=stem)
        return
    with p.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise TrajectoryFormatError(f"{p}:{lineno}: not valid JSON ({exc.msg} at column {exc.colno}); "
                                            "expected one conversation per line") from None
            yield _trajectory(obj, where=f"{p}:{lineno}", default_id=f"{stem}:{lineno}")


def load_trajectories(path: str | os.PathLike[str], *, limit: int | None = None,
                      ids: Iterable[str] | None = None) -> list[Trajectory]:
    """Load trajectories; `ids` selects by id (in file order; unknown ids are an error), `limit` keeps the first N."""
    wanted = list(ids) if ids is not None else None
    out: list[Trajectory] = []
    for traj in iter_trajectories(path):
        if wanted is not None and traj.id not in wanted:
            continue
        out.append(traj)
        if limit is not None and wanted is None and len(out) >= limit:
            break
    if wanted is not None:
        missing = [i for i in wanted if i not in {t.id for t in out}]
        if missing:
            raise TrajectoryFormatError(f"{path}: no trajectory with id {', '.join(map(repr, missing))}")
        if limit is not None:
            out = out[:limit]
    return out


# --- replay -------------------------------------------------------------------------------------------------------
@dataclass
class ReplayRound:
    """One round: the exact view sent before assistant turn `round`, and its record for rounds.jsonl."""

    round: int
    view: list[dict[str, Any]]
    record: dict[str, Any]


class _Scorer:
    """Per-round retention and prefix reuse against one trajectory (carried values are computed once)."""

    def __init__(self, traj: Trajectory, carried: Mapping[int, Sequence[CarriedValue]] | None, enabled: bool):
        self.enabled = enabled
        self.carried = (carried if carried is not None else carried_values_by_round(traj.messages)) if enabled else {}
        self.prev: list[dict[str, Any]] | None = None

    def score(self, t: int, view: list[dict[str, Any]], tokens: Sequence[int]) -> dict[str, Any]:
        if not self.enabled:
            return {}
        reused, total = prefix_reuse(self.prev, view, tokens)
        self.prev = view
        out: dict[str, Any] = {"reused_tokens": reused, "reuse_total": total if t > 0 else 0,
                               "prefix_reuse": round(reused / total, 4) if t > 0 and total else None}
        out.update(retention(self.carried.get(t, ()), view))
        return out


def _policy_fold_config(policy: Any) -> Any:
    """A policy may name the fold config a session should use with it (WindowPolicy: a minimal pointer block)."""
    if isinstance(policy, str):
        from agentmem.policies import REGISTRY

        policy = REGISTRY.get(policy)
    return getattr(policy, "fold_config", None)


def replay(
    traj: Trajectory,
    *,
    policy: Any = "budget",
    budget_tokens: int | None = None,
    thinker: Any = None,
    store: Any = None,
    model: str | None = None,
    session_id: str | None = None,
    max_rounds: int | None = None,
    score: bool = True,
    carried: Mapping[int, Sequence[CarriedValue]] | None = None,
    fold_config: Any = None,
    **policy_config: Any,
) -> Iterator[ReplayRound]:
    """Replay one trajectory through a fresh AgentMemory session, yielding each round's view and stats.

    Args:
        policy, budget_tokens, thinker, policy_config: as for AgentMemory (a thinker instance is reused as is).
        store: Store / URL / path for the session (default: a private in-memory SQLite store).
        model: tokenizer model name (default: the trajectory's meta.model).
        max_rounds: stop after this many rounds.
        score: compute retention and prefix reuse (pure metrics over the view; off for raw speed runs).
        carried: precomputed `carried_values_by_round(traj.messages)` (reused across policies).
    """
    from agentmem.memory import AgentMemory
    from agentmem.store import Store

    own_store = store is None
    st = Store(":memory:") if own_store else store
    memory = AgentMemory(
        policy=policy, budget_tokens=budget_tokens, store=st, session_id=session_id or traj.id[:200],
        thinker=thinker, model=model or traj.model, fold_config=fold_config or _policy_fold_config(policy),
        **policy_config)
    session = memory.session
    scorer = _Scorer(traj, carried, score)
    try:
        for t, i in enumerate(traj.assistant_indices()):
            if max_rounds is not None and t >= max_rounds:
                break
            view = session.prepare(traj.messages[:i])  # exactly what AgentMemory.completion sends
            stats = session.last.as_dict()
            tokens = [it.tokens for it in session.view.items]
            t0 = time.perf_counter()
            session.record_response(traj.messages[i])  # the recorded reply stands in for the model's
            record = {"trajectory": traj.id, **stats, "round": t, "view_messages": len(view),
                      "record_ms": round((time.perf_counter() - t0) * 1000, 3)}
            record.update(scorer.score(t, view, tokens))
            yield ReplayRound(round=t, view=view, record=record)
    finally:
        session.close()  # a background decision or fold still running is finished, not left behind
        if own_store:
            st.close()


ViewFn = Callable[[list[dict[str, Any]]], "tuple[list[dict[str, Any]], float, list[dict[str, Any]]]"]
"""A stateful external context manager: history → (view, thinker_ms, actions). Used for library baselines."""


def replay_views(traj: Trajectory, view_fn: ViewFn, *, model: str | None = None, max_rounds: int | None = None,
                 score: bool = True, carried: Mapping[int, Sequence[CarriedValue]] | None = None,
                 ) -> Iterator[ReplayRound]:
    """Replay through any history → view function (e.g. langchain's trim_messages), scored like `replay`.

    The function gets the same causal prefixes; its wall time minus `thinker_ms` is its bookkeeping time. Each view
    is checked for what providers reject (a tool result without its call, a call without its result):
    `invalid_view` holds the problem (agentmem's own views are validated by the session and never invalid).
    """
    counter = TokenCounter(model or traj.model)
    cache: dict[str, int] = {}

    def tok(m: Mapping[str, Any]) -> int:
        key = json.dumps(m, sort_keys=True, ensure_ascii=False)
        n = cache.get(key)
        if n is None:
            n = cache[key] = counter.message(m)
        return n

    scorer = _Scorer(traj, carried, score)
    raw = 3
    seen = 0
    for t, i in enumerate(traj.assistant_indices()):
        if max_rounds is not None and t >= max_rounds:
            break
        history = traj.messages[:i]
        for m in history[seen:]:
            raw += tok({k: v for k, v in m.items() if k != "id"})
        new = len(history) - seen
        seen = len(history)
        t0 = time.perf_counter()
        view, thinker_ms, actions = view_fn(history)
        wall = (time.perf_counter() - t0) * 1000
        view = [{k: v for k, v in m.items() if k != "id"} for m in view]
        tokens = [tok(m) for m in view]
        invalid = None
        try:  # tool pairing as providers check it; a later system message (langmem's summary) is accepted
            validate_history([m for k, m in enumerate(view) if not (k and m.get("role") == "system")])
        except InvalidMessageError as exc:
            invalid = str(exc)
        record = {"trajectory": traj.id, "round": t, "raw_tokens": raw, "view_tokens": sum(tokens) + 3,
                  "new_messages": new, "actions": actions, "rejected": [],
                  "bookkeeping_ms": round(wall - thinker_ms, 3), "thinker_ms": round(thinker_ms, 3),
                  "view_messages": len(view), "record_ms": 0.0, "invalid_view": invalid}
        record.update(scorer.score(t, view, tokens))
        yield ReplayRound(round=t, view=view, record=record)


# --- a whole run: files on disk -------------------------------------------------------------------------------
def machine_info() -> dict[str, Any]:
    """Where a measurement was taken (for summary.json and the benchmark table)."""
    mem_gib = None
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        mem_gib = round(pages * size / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        pass
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            cpu = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), cpu)
    except OSError:
        pass
    return {"cpus": os.cpu_count(), "cpu": cpu, "memory_gib": mem_gib, "python": platform.python_version(),
            "platform": platform.platform(), "gpu": _gpu_name()}


def _gpu_name() -> str | None:
    try:
        import importlib.util

        if importlib.util.find_spec("torch") is None:
            return None
        import torch

        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except Exception:  # noqa: BLE001 - informational only
        return None


def run_replay(
    trajectories: Sequence[Trajectory],
    out_dir: str | os.PathLike[str],
    *,
    policy: str = "budget",
    budget_tokens: int | None = None,
    thinker: Any = None,
    model: str | None = None,
    store: Any = None,
    dump_views: bool = False,
    plot: bool = True,
    policy_config: Mapping[str, Any] | None = None,
    on_trajectory: Callable[[Trajectory], None] | None = None,
    on_round: Callable[[ReplayRound], None] | None = None,
    source: str | None = None,
) -> dict[str, Any]:
    """Replay every trajectory, write DIR/rounds.jsonl, DIR/summary.json, DIR/footprint.png (and views.jsonl).

    `store` is one Store for all sessions (each trajectory is its own session), default DIR/replay.db, rewritten.
    Returns the summary dict.
    """
    from agentmem.memory import resolve_thinker
    from agentmem.store import Store
    from agentmem.thinkers.summary import decision_timing, thinker_summary

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if store is None:
        db = out / "replay.db"
        for suffix in ("", "-wal", "-shm"):
            Path(str(db) + suffix).unlink(missing_ok=True)
        store = Store(db)
    elif not isinstance(store, Store):
        store = Store(store)
    think = resolve_thinker(thinker)
    rounds: list[dict[str, Any]] = []
    t_start = time.perf_counter()
    views_fh = (out / "views.jsonl").open("w", encoding="utf-8") if dump_views else None
    try:
        with (out / "rounds.jsonl").open("w", encoding="utf-8") as rounds_fh:
            for traj in trajectories:
                if on_trajectory:
                    on_trajectory(traj)
                sid = f"{traj.id[:150]}#{uuid.uuid4().hex[:8]}"
                for rr in replay(traj, policy=policy, budget_tokens=budget_tokens, thinker=think, store=store,
                                 model=model, session_id=sid, **dict(policy_config or {})):
                    rounds.append(rr.record)
                    rounds_fh.write(json.dumps(rr.record, ensure_ascii=False) + "\n")
                    if views_fh is not None:
                        views_fh.write(json.dumps({"trajectory": traj.id, "round": rr.round, "messages": rr.view},
                                                  ensure_ascii=False) + "\n")
                    if on_round:
                        on_round(rr)
    finally:
        if views_fh is not None:
            views_fh.close()
    summary = {
        "command": "replay",
        "file": source,
        "policy": policy,
        "budget_tokens": budget_tokens,
        "policy_config": dict(policy_config or {}),
        "thinker": thinker_summary(think, rounds),  # None without a model (extractive folds)
        "thinker_decisions": decision_timing(rounds) if think is not None else None,  # late / stale / pending
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "seconds": round(time.perf_counter() - t_start, 2),
        "store": {"url": store.url, "bytes": _store_bytes(store)},
        **summarize_rounds(rounds),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    if plot:
        summary["plot"] = plot_footprint(rounds, out / "footprint.png", budget_tokens=budget_tokens,
                                         title=f"agentmem replay: policy {policy}")
    return summary


def _store_bytes(store: Any) -> int | None:
    url = getattr(store, "url", "")
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        p = Path(url[len("sqlite:///"):])
        return sum(Path(str(p) + s).stat().st_size for s in ("", "-wal") if Path(str(p) + s).exists()) or None
    return None


def plot_footprint(rounds: Sequence[Mapping[str, Any]], path: str | os.PathLike[str], *,
                   budget_tokens: int | None = None, title: str = "agentmem replay", max_trajectories: int = 4,
                   ) -> str | None:
    """View tokens per round against raw for the longest few trajectories. None (with no file) without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    by: dict[str, list[Mapping[str, Any]]] = {}
    for r in rounds:
        by.setdefault(str(r["trajectory"]), []).append(r)
    longest = sorted(by, key=lambda k: (-len(by[k]), k))[:max_trajectories]
    fig, ax = plt.subplots(figsize=(9, 5), dpi=110)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, tid in enumerate(longest):
        rs = sorted(by[tid], key=lambda r: r["round"])
        c = colors[k % len(colors)]
        label = tid if len(tid) <= 48 else "…" + tid[-47:]
        ax.plot([r["round"] for r in rs], [r["raw_tokens"] for r in rs], color=c, linestyle="--", linewidth=1,
                alpha=0.7)
        ax.plot([r["round"] for r in rs], [r["view_tokens"] for r in rs], color=c, linewidth=1.8, label=label)
    if budget_tokens:
        ax.axhline(budget_tokens, color="grey", linewidth=1, linestyle=":", label=f"budget {budget_tokens}")
    ax.set_xlabel("round (assistant turn)")
    ax.set_ylabel("tokens sent to the model")
    ax.set_title(f"{title}\nsolid: view, dashed: raw history", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return str(path)
