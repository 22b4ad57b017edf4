"""One agent session through the middleware: ingest → decide → apply → record → validate → render.

Planning is written once, as a generator that *yields* thinker requests and receives their results (sans-IO).
The sync driver answers with `thinker.think`, the async driver with `await thinker.athink`; everything else —
which actions, which primitive, what is recorded — is the same code for both.

A session is a tree (agentmem.store): a history that leaves the current branch, or stops short of it, continues
on the branch that holds it or on a new one, so retries, crash-resume, time travel, edits and concurrent calls
never fail. One lock per session serves threads and coroutines; writes that lose a race refresh and go on.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import logging
import operator
import threading
import time
import uuid
from collections.abc import Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agentmem import archive
from agentmem.budget_guard import BudgetGuardConfig, check_budget, guard_actions
from agentmem.actions import Action, EvictAction, FoldAction, RecallAction, UnrecallAction
from agentmem.messages import HistoryError, Message, message_text, parse_message
from agentmem.primitives import (
    EmptyThinkingError,
    EvictConfig,
    FoldConfig,
    RecallConfig,
    SummarizeConfig,
    evict,
    fold,
    recall,
    summarize_by_thinking,
    thinking_request,
    unrecall,
)
from agentmem.store import ConcurrentWriteError, Store, chain_next
from agentmem.thinkers.base import Thinker, ThinkRequest, ThinkResult
from agentmem.tokens import TokenCounter
from agentmem.view import (
    Event,
    EventError,
    MessageItem,
    View,
    apply_event,
    build_view,
)

__all__ = ["MemorySession", "RoundStats", "BranchPoint", "SessionBusyError"]

_log = logging.getLogger(__name__)

RECALL_TOOL_NAME = archive.RECALL_TOOL_NAME  # the tool AgentMemory offers (agentmem.memory re-exports it)

_Plan = Generator[ThinkRequest, "ThinkResult | BaseException", None]
# a round, sans IO: it yields what it waits on (a background job still running, or a request for the thinker), is
# sent the result, and returns the view
_Round = Generator["concurrent.futures.Future[Any] | ThinkRequest", "ThinkResult | BaseException | None",
                   list[dict[str, Any]]]


@dataclass
class RoundStats:
    """What one round through the middleware did and cost."""

    round: int = 0
    raw_tokens: int = 0
    view_tokens: int = 0
    new_messages: int = 0
    actions: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    bookkeeping_ms: float = 0.0  # critical-path time spent by agentmem, thinker calls excluded
    thinker_ms: float = 0.0
    branch: int = 0
    forks: list[dict[str, Any]] = field(default_factory=list)  # branches started or switched to in this round
    budget: dict[str, Any] | None = None  # the budget guard's report: request tokens against the budget

    def as_dict(self) -> dict[str, Any]:
        return {"round": self.round, "raw_tokens": self.raw_tokens, "view_tokens": self.view_tokens,
                "new_messages": self.new_messages, "actions": self.actions, "rejected": self.rejected,
                "bookkeeping_ms": round(self.bookkeeping_ms, 3), "thinker_ms": round(self.thinker_ms, 3),
                "branch": self.branch, "forks": self.forks,
                **({"budget": self.budget} if self.budget is not None else {})}


@dataclass(frozen=True)
class BranchPoint:
    """Where a view was made: a branch and the length of its path. A reply belongs right after this point."""

    branch: int
    length: int


class SessionBusyError(RuntimeError):
    """A blocking call on a session whose lock this very thread holds (e.g. sync prepare() inside a coroutine
    that is awaiting aprepare() on the same event loop): waiting would deadlock."""


class _SessionLock:
    """Mutual exclusion for one session, for threads and coroutines alike.

    Not reentrant. Threads block on a threading.Lock; coroutines poll it without blocking the event loop, so a
    coroutine may hold it across an awaited thinker call while other coroutines and threads wait their turn.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._owner: int | None = None

    def __enter__(self) -> None:
        if self._owner == threading.get_ident():
            raise SessionBusyError("this session is in use by this thread (a coroutine awaiting aprepare()?); "
                                   "use the async API here, or another thread")
        self._lock.acquire()
        self._owner = threading.get_ident()

    def __exit__(self, *exc: object) -> None:
        self._owner = None
        self._lock.release()

    async def __aenter__(self) -> None:
        delay = 0.0002
        while not self._lock.acquire(blocking=False):
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.01)
        self._owner = threading.get_ident()

    async def __aexit__(self, *exc: object) -> None:
        self.__exit__()


# The point each prepare() made its view at, per thread and per asyncio task: record_response() in the same
# thread/task stores the reply there, so concurrent calls on one session fork instead of interleaving.
_POINTS: contextvars.ContextVar[dict[object, BranchPoint]] = contextvars.ContextVar("agentmem_points")


def _set_point(key: object, point: BranchPoint) -> None:
    _POINTS.set({**_POINTS.get({}), key: point})  # a new dict: contexts copied from this one keep their own
_WRITE_RETRIES = 8  # refreshes after another writer moved the branch on, before ConcurrentWriteError is raised


@dataclass
class _BackgroundFold:
    """A thinking fold (or, with action None, a policy decision) planned at the soft watermark, in a worker."""

    action: FoldAction | None
    future: concurrent.futures.Future
    planned_round: int
    started: float
    branch: int = 0
    view: View | None = None  # a decision: the view the model was shown (its answer is re-checked against now)
    decided: concurrent.futures.Future | None = None  # a decision: the model's answer, before its thinking folds
    consumed: bool = False  # the decision was applied at the hard budget before its thinking folds were ready


class MemorySession:
    """The state of one session: its store rows, its replayed view, and the policy that manages it.

    Args:
        store: where messages and events live (nothing is ever deleted there).
        session_id: resume an existing session (the branch written last; its view is rebuilt by replay) or start a
            new one. Any history passed later picks its own branch (see `ingest`).
        policy: decides actions each round (agentmem.policies).
        thinker: answers summarize-by-thinking and policy requests; None means extractive folds only.
        model: model name used to pick the offline tokenizer.
        verify: how a re-sent history is compared with the branch it continues: "cached" (default: every
            position; messages equal to those passed last time, with equal content, are known unchanged by two
            C-speed list comparisons; anything else is parsed and re-hashed), "full" (re-hash every message every
            round; also catches in-place edits nested deeper inside a message) or "ends" (first and last only).
            A history that differs, or stops short, continues on a new branch from the longest common prefix.
        background: run thinking folds planned at the soft watermark in a worker thread.
    """

    def __init__(
        self,
        store: Store,
        session_id: str | None = None,
        *,
        policy: Any,
        thinker: Thinker | None = None,
        model: str | None = None,
        fold_config: FoldConfig | None = None,
        summarize_config: SummarizeConfig | None = None,
        evict_config: EvictConfig | None = None,
        recall_config: RecallConfig | None = None,
        thinker_timeout_s: float | None = None,
        background: bool = False,
        verify: str = "cached",
        budget_guard: BudgetGuardConfig | None = None,
    ):
        self.budget_guard = budget_guard  # agentmem.budget_guard: the whole request within budget, every round
        if verify not in ("cached", "full", "ends"):
            raise ValueError(f"verify must be 'cached', 'full' or 'ends', not {verify!r}")
        self.verify = verify
        self.store = store
        self.session_id = session_id or "s-" + uuid.uuid4().hex[:16]
        self.policy = policy
        self.thinker = thinker
        self.counter = TokenCounter(model)
        # a policy may name the fold it needs (WindowPolicy: a pointer block, no summary)
        self.fold_config = fold_config or getattr(policy, "fold_config", None) or FoldConfig()
        self.summarize_config = summarize_config or SummarizeConfig()
        self.evict_config = evict_config or EvictConfig()
        self.recall_config = recall_config or RecallConfig()
        self.thinker_timeout_s = thinker_timeout_s
        self.background = background and thinker is not None
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._job: _BackgroundFold | None = None
        self._lock = _SessionLock()
        self._key = object()  # identifies this session object in _POINTS
        self.forks = 0  # branches this object started
        self.store.ensure_session(self.session_id)
        self._load(store.head_branch(self.session_id))
        self.last: RoundStats = RoundStats(raw_tokens=self.raw_tokens, view_tokens=self.view.tokens,
                                           branch=self.branch)

    # --- branch state ------------------------------------------------------------------------------------------
    def _load(self, branch: int) -> None:
        """Make `branch` current, rebuilt from one consistent read of its messages and events."""
        state = self.store.load_branch(self.session_id, branch)
        self._reset(branch, [(s.message, s.tokens) for s in state.messages], [s.chain for s in state.messages],
                    state.events)

    def _reset(self, branch: int, path: list[tuple[Message, int]], chains: list[str], events: list[Event],
               view: View | None = None) -> None:
        self.branch = branch
        self.view = view if view is not None else build_view(path, events, self.counter)
        self.message_count = len(path)
        self._path = path  # (message, tokens) per position of the branch's path
        self._chains = chains  # hash chain per position (agentmem.store.chain_next)
        self._events = list(events)  # the branch's event log, inherited events first
        self._sent: list[Any] = []  # the objects the agent passed last, per position, known to match the path
        self._sent_content: list[Any] = []
        self._verified = 0  # leading positions the last check proved unchanged by identity
        self._pending_calls: set[str] = set()
        self.raw_tokens = 3
        self.rounds = 0
        self.task = ""
        for m, t in path:
            self._track(m, t)

    @property
    def point(self) -> BranchPoint:
        """Where the session stands: its branch and that branch's path length."""
        return BranchPoint(self.branch, self.message_count)

    def _refresh(self) -> None:
        """Take in what other writers (processes, other session objects) appended to this branch."""
        state = self.store.load_branch(self.session_id, self.branch, after_pos=self.message_count,
                                       after_event=len(self._events))
        if not state.messages and not state.events:
            return
        pairs = [(s.message, s.tokens) for s in state.messages]
        self.view = build_view(pairs, state.events, self.counter, base=self.view)
        self.message_count += len(pairs)
        self._path.extend(pairs)
        self._chains.extend(s.chain for s in state.messages)
        self._events.extend(state.events)
        for m, t in pairs:
            self._track(m, t)

    def _fork(self, at: int, reason: str) -> dict[str, Any]:
        """Continue on a new branch that shares the first `at` messages of the current one (and its events
        applied up to there). Nothing stored is changed; the old branch stays archived and recallable."""
        parent = self.branch
        branch, fork_event = self.store.fork(self.session_id, parent, at, meta={"reason": reason})
        self.forks += 1
        inherited = [e for e in self._events if e.after_message <= at]
        if len(inherited) != fork_event.seq - 1:  # another writer added events at or before `at`: read them
            self._load(branch)
        else:
            view = self._view_at(at, inherited)
            self._reset(branch, self._path[:at], self._chains[:at], inherited + [fork_event],
                        view=apply_event(view, fork_event, self.counter) if view is not None else None)
        return {"branch": branch, "parent": parent, "fork_at": at, "reason": reason}

    def _view_at(self, at: int, inherited: list[Event]) -> View | None:
        """The view at path length `at` without a replay, when no later event touched it: the current view minus
        its trailing original messages. None when a replay is needed."""
        if len(inherited) != len(self._events):
            return None
        drop = self.message_count - at
        tail = self.view.items[len(self.view.items) - drop:] if drop else []
        if len(tail) != drop or any(not isinstance(it, MessageItem) or it.pos != at + k + 1
                                    for k, it in enumerate(tail)):
            return None
        view = self.view.copy()
        del view.items[len(view.items) - drop:]
        view.message_count = at
        view.tokens -= sum(it.tokens for it in tail)
        if at == 0:
            view.system_id = None
        return view

    def _goto(self, branch: int, length: int, reason: str) -> dict[str, Any] | None:
        """Stand at (branch, length): switch to that branch, and fork there when its path is longer."""
        switched = None
        if branch != self.branch:
            self._load(branch)
            switched = {"branch": branch, "switched": True, "reason": reason}
        if length < self.message_count:
            return self._fork(length, reason)
        return switched

    # --- ingest ----------------------------------------------------------------------------------------------
    def _track(self, m: Message, tokens: int) -> None:
        self.raw_tokens += tokens
        if m.role == "assistant":
            self.rounds += 1
            self._pending_calls = set(m.tool_call_ids)
        elif m.role == "tool":
            self._pending_calls.discard(m.tool_call_id or "")
        if not self.task and m.role == "user":
            self.task = message_text(m)

    def ingest(self, messages: Sequence[Any], *, allow_open_tail: bool = True) -> list[Message]:
        """Store the messages of `messages` (the agent's full history) that the session has not seen yet.

        The agent passes its whole history each call. Where it extends the current branch, the new messages are
        appended; where it differs from it, or stops short of it (a retry, a resume after a crash, time travel,
        an edit), the session continues from the longest common prefix: on the stored branch that already holds
        more of this history, or on a new branch. Nothing stored is changed. Bad input raises, nothing written.
        """
        with self._lock:
            return self._ingest(messages, allow_open_tail=allow_open_tail)

    def _ingest(self, messages: Sequence[Any], *, allow_open_tail: bool, stats: RoundStats | None = None
                ) -> list[Message]:
        if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
            raise HistoryError(f"messages must be a list, got {type(messages).__name__}")
        for attempt in range(_WRITE_RETRIES + 1):
            try:
                return self._ingest_once(messages, allow_open_tail, stats)
            except ConcurrentWriteError:
                if attempt == _WRITE_RETRIES:
                    raise
                self._refresh()
        raise AssertionError("unreachable")  # pragma: no cover

    def _ingest_once(self, messages: Sequence[Any], allow_open_tail: bool, stats: RoundStats | None
                     ) -> list[Message]:
        common, parsed = self._common_prefix(messages)
        if common < self.message_count:
            new = [parsed.get(i) or parse_message(messages[i], index=i) for i in range(common, len(messages))]
            if new:  # bad input raises here, before a branch is written
                self._check(new, first_index=common, pending=self._pending_at(common),
                            allow_open_tail=allow_open_tail, path_ids={m.id for m, _ in self._path[:common]})
            elif not allow_open_tail and self._pending_at(common):
                raise HistoryError(f"tool call(s) {', '.join(sorted(self._pending_at(common)))} have no result at "
                                   "the end of the history: a model cannot be called on it", index=common - 1)
            move = self._continue_from(common, new)
            if stats is not None and move is not None:
                stats.forks.append(move)
        n = self.message_count
        new = [parsed.get(i) or parse_message(messages[i], index=i) for i in range(n, len(messages))]
        out = self._append(new, first_index=n, allow_open_tail=allow_open_tail)
        keep = self._verified if len(self._sent) >= self._verified else 0  # a fork resets the cache
        del self._sent[keep:], self._sent_content[keep:]
        tail = list(messages[keep:])
        self._sent.extend(tail)
        self._sent_content.extend(_contents(tail))
        return out

    def _common_prefix(self, messages: Sequence[Any]) -> tuple[int, dict[int, Message]]:
        """How many leading messages equal the current path, and the messages parsed to find out."""
        k = min(len(messages), self.message_count)
        parsed: dict[int, Message] = {}
        self._verified = 0
        if self.verify == "ends" and k:
            ends = sorted({0, k - 1})
            if all(self._same(i, messages, parsed) for i in ends):
                return k, parsed
            start = 0
        elif self.verify == "full":
            start = 0
        else:
            start = min(k, _identical_prefix(messages, self._sent, self._sent_content))
        self._verified = start
        for i in range(start, k):
            if not self._same(i, messages, parsed):
                return i, parsed
        return k, parsed

    def _same(self, i: int, messages: Sequence[Any], parsed: dict[int, Message]) -> bool:
        m = parsed.get(i) or parse_message(messages[i], index=i)
        parsed[i] = m
        return chain_next(self._chains[i - 1] if i else "", m.fingerprint()) == self._chains[i]

    def _continue_from(self, common: int, rest: list[Message]) -> dict[str, Any] | None:
        """The history leaves the current path after `common` messages: stand where it continues."""
        reason = "diverged" if rest else "shorter history (retry or resume)"
        chain = self._chains[common - 1] if common else ""
        chains = []
        for m in rest:
            chain = chain_next(chain, m.fingerprint())
            chains.append(chain)
        found = self.store.find_paths(self.session_id, chains) if chains else {}
        deepest = max((k for k, c in enumerate(chains) if c in found), default=None)
        if deepest is None:  # nothing stored beyond the common prefix: fork the current branch there
            return self._fork(common, reason)
        branch, pos = found[chains[deepest]]
        return self._goto(branch, pos, reason + ", continues a stored branch")

    def _check(self, new: list[Message], *, first_index: int, pending: set[str], allow_open_tail: bool,
               path_ids: set[str] = frozenset()) -> None:  # type: ignore[assignment]
        """The invariants `new` must keep after `first_index` messages with these calls `pending`; raises
        HistoryError naming the message, before anything is written."""
        pending = set(pending)
        seen_ids: set[str] = set()
        for i, m in enumerate(new):
            idx = first_index + i
            if m.id in seen_ids:
                raise HistoryError("duplicate message id", index=idx, message_id=m.id)
            if m.id in path_ids:
                raise HistoryError("message id already stored in this session", index=idx, message_id=m.id)
            seen_ids.add(m.id)
            if m.role == "system" and (first_index or i):
                raise HistoryError("system message is not at the start of the history", index=idx, message_id=m.id)
            if m.role == "tool":
                if m.tool_call_id not in pending:
                    raise HistoryError(f"tool result {m.tool_call_id!r} has no matching pending tool call",
                                       index=idx, message_id=m.id)
                pending.discard(m.tool_call_id)
            else:
                if pending:
                    raise HistoryError(f"tool call(s) {', '.join(sorted(pending))} have no result before this "
                                       f"{m.role} message", index=idx, message_id=m.id)
                if m.role == "assistant":
                    pending = set(m.tool_call_ids)
        if pending and not allow_open_tail:
            raise HistoryError(f"tool call(s) {', '.join(sorted(pending))} have no result at the end of the history: "
                               "a model cannot be called on it", index=first_index + len(new) - 1,
                               message_id=new[-1].id)

    def _pending_at(self, at: int) -> set[str]:
        """Tool calls of the path's first `at` messages that have no result among them."""
        answered: set[str] = set()
        for i in range(at - 1, -1, -1):
            m = self._path[i][0]
            if m.role == "tool":
                answered.add(m.tool_call_id or "")
            else:
                return set(m.tool_call_ids) - answered if m.role == "assistant" else set()
        return set()

    def _append(self, new: list[Message], *, first_index: int, allow_open_tail: bool = True) -> list[Message]:
        if not new:
            return []
        self._check(new, first_index=first_index, pending=self._pending_calls, allow_open_tail=allow_open_tail)
        tokens = [self.counter.message(m) for m in new]
        self.store.append_messages(self.session_id, new, tokens, expected_count=self.message_count,
                                   branch=self.branch)
        chain = self._chains[-1] if self._chains else ""
        for m, t in zip(new, tokens, strict=True):
            self.view.append_message(m, t)
            self._track(m, t)
            self._path.append((m, t))
            chain = chain_next(chain, m.fingerprint())
            self._chains.append(chain)
        self.message_count += len(new)
        return new

    def record_response(self, message: Any, *, at: BranchPoint | None = None) -> Message:
        """Store the model's reply right after the history its view was made from.

        `at` defaults to the point of the last prepare() in this thread or asyncio task. When the branch has
        moved on since (a concurrent call on this session stored its reply first), the reply starts a new
        branch at that point instead of being appended after the other call's reply.
        """
        with self._lock:
            if at is None:
                at = _POINTS.get({}).get(self._key) or self.point
            m = parse_message(message, index=at.length)
            for attempt in range(_WRITE_RETRIES + 1):
                try:
                    if at.branch == self.branch and self.message_count > at.length:
                        same = chain_next(self._chains[at.length - 1] if at.length else "", m.fingerprint())
                        if same == self._chains[at.length]:  # this very reply is already stored there
                            return self._path[at.length][0]
                    self._goto(at.branch, at.length, "concurrent reply")
                    stored = self._append([m], first_index=self.message_count)[0]
                    _set_point(self._key, self.point)
                    return stored
                except ConcurrentWriteError:
                    if attempt == _WRITE_RETRIES:
                        raise
                    self._refresh()
            raise AssertionError("unreachable")  # pragma: no cover

    # --- planning (shared by sync and async) -----------------------------------------------------------------
    def _context(self, recall_ids: Iterable[str] = ()) -> Any:
        from agentmem.policies.base import PolicyContext

        budget = getattr(self.policy.config, "budget_tokens", None)
        return PolicyContext(task=self.task, model=self.counter.model, round=self.rounds, budget_tokens=budget,
                             recall_ids=tuple(recall_ids))

    def _plan(self, stats: RoundStats) -> _Plan:
        ctx = self._context()
        thinking: str | None = None
        judge = getattr(self.policy, "judge", None)  # a policy the model drives (ThinkerPolicy)
        pending: str | None = None
        if judge is None:
            request = self.policy.thinking_request(self.view, ctx)
        elif self.background:  # asked off the critical path, from _start_background; never waited for
            request = None
            job = self._job
            pending = ("no decision asked yet" if job is None else
                       "model busy with the last decision's thinking folds" if job.consumed else "decision pending")
        else:
            request = self.policy.thinking_request(self.view, ctx, getattr(self, "_decided_at", None))
        result: ThinkResult | BaseException | None = None
        if request is not None:
            if self.thinker is None:
                stats.rejected.append("policy asked for a thinker but none is configured")
            else:
                result = yield request
                if isinstance(result, BaseException):
                    stats.rejected.append(f"policy thinker failed: {result}")
                else:  # a decision is the visible answer; a non-thinking model has only text
                    thinking = result.answer or result.text
        if judge is None:
            actions = self.policy.decide(self.view, ctx, thinking)
        else:
            actions, record = judge(self.view, ctx, thinking, pending=pending)
            if result is not None or record is not None:
                self._log_decision(stats, record, result, background=pending is not None)
        for action in actions:
            yield from self._apply(action, stats)
        if result is not None:
            self._decided_at = self.view.tokens

    def _log_decision(self, stats: RoundStats, record: Any, result: ThinkResult | BaseException | None,
                      *, background: bool, late: dict[str, Any] | None = None) -> None:
        """Every model decision goes into the round's actions (and the log) with its validation result; so does
        the budget rule acting alone while a background decision is pending (result None). A decision that
        arrived late says when it was asked; one whose every action went stale is marked stale."""
        if isinstance(result, BaseException):
            entry: dict[str, Any] = {"kind": "decision", "valid": False, "applied": 0, "fallback": True,
                                     "errors": [f"thinker failed: {type(result).__name__}: {result}"[:300]]}
        else:
            entry = {"kind": "decision", **record.model_dump()}
            entry["errors"], entry["ops"], entry["stale"] = list(record.errors), list(record.ops), list(record.stale)
            if result is not None:
                entry["thinker_s"] = round(result.seconds, 3)
            if record.stale and not record.applied:
                entry["stale_decision"] = True  # nothing the model chose still fits the view: logged, not applied
        if late is not None:
            entry.update(late)
        entry["background"] = background
        stats.actions.append(entry)
        _log.info("agentmem %s: model decision %s", self.session_id, entry)

    def _decide_off_path(self, view: View, ctx: Any, request: ThinkRequest,
                         decided: concurrent.futures.Future) -> tuple[Any, ...]:
        """Worker thread: the model's decision over a snapshot of the view (published in `decided` at once, so a
        round at the hard budget can use it), then the thinking folds it asks for (over that snapshot). Nothing is
        applied here: the round that collects it re-checks it against its view."""
        folds: dict[tuple[str, ...], ThinkResult | BaseException] = {}
        try:
            result: ThinkResult | BaseException = self.thinker.think(request)  # type: ignore[union-attr]
        except Exception as exc:  # becomes a logged fallback at collection
            decided.set_result(exc)
            return exc, folds
        decided.set_result(result)
        actions, _record = self.policy.judge(view, ctx, result.answer or result.text)
        for action in actions:
            if isinstance(action, FoldAction) and action.mode == "think":
                fold_request = thinking_request(view, span=action.span, task=self.task, counter=self.counter,
                                                config=self.summarize_config)
                if self.thinker_timeout_s:
                    fold_request = fold_request.model_copy(update={"timeout_s": self.thinker_timeout_s})
                folds[action.span] = self._call_thinker_sync(fold_request)
        return result, folds

    def _apply(self, action: Action, stats: RoundStats) -> _Plan:
        policy_name = getattr(self.policy, "name", type(self.policy).__name__)
        meta: dict[str, Any] = {"policy": policy_name, "reason": action.reason}
        try:
            if isinstance(action, FoldAction):
                if action.mode == "think" and self.thinker is not None:
                    request = thinking_request(self.view, span=action.span, task=self.task, counter=self.counter,
                                               config=self.summarize_config)
                    if self.thinker_timeout_s:
                        request = request.model_copy(update={"timeout_s": self.thinker_timeout_s})
                    t0 = time.perf_counter()
                    result = yield request
                    meta["wall_s"] = round(time.perf_counter() - t0, 3)
                    new, ev = self._fold_with(action.span, result, meta, action.block_tokens)
                else:
                    if action.mode == "think":
                        meta["fallback"] = "no thinker configured"
                    new, ev = fold(self.view, span=action.span, counter=self.counter, config=self.fold_config,
                                   meta=meta, block_tokens=action.block_tokens)
            elif isinstance(action, EvictAction):
                new, ev = evict(self.view, ids=action.ids, counter=self.counter, config=self.evict_config, meta=meta)
            elif isinstance(action, RecallAction):
                found = self.find_archived(ids=action.ids, query=action.query, limit=self.recall_config.max_messages)
                cfg = self.recall_config
                if action.budget_tokens:
                    cfg = cfg.model_copy(update={"budget_tokens": action.budget_tokens})
                new, ev = recall(self.view, found=found, counter=self.counter, query=action.query, config=cfg,
                                 meta=meta)
            elif isinstance(action, UnrecallAction):
                new, ev = unrecall(self.view, keys=action.keys, counter=self.counter, meta=meta)
            else:  # pragma: no cover - the Action union guards this
                raise EventError(f"unknown action {action!r}")
        except EventError as exc:
            stats.rejected.append(f"{action.kind}: {exc}")
            return
        if ev is None:  # e.g. a recall that found nothing
            return
        self._record(new, ev, stats)

    def _fold_with(self, span: Sequence[str], result: ThinkResult | BaseException, meta: dict[str, Any],
                   block_tokens: int | None = None) -> tuple[View, Event]:
        """A summarize-by-thinking block from a thinker's result; the extractive fold when it failed or was empty.

        `block_tokens`: the policy's allotment for the block, given for a fold applied in the round it was planned
        (the model's state section, then salient lines up to that size, as an extractive fold of the plan would
        hold). A background fold passes None and keeps the thinking block's own cap: applied rounds after its
        plan, a block of the whole allotment left the view over the soft watermark, and the following rounds waited
        on the thinker at the hard budget (tests/test_background.py)."""
        if isinstance(result, BaseException):
            meta["fallback"] = f"thinker failed: {type(result).__name__}: {result}"[:500]
        else:
            meta.update(thinker=result.model, thinker_s=round(result.seconds, 3), thinker_tokens_in=result.tokens_in,
                        thinker_tokens_out=result.tokens_out)
            try:
                return summarize_by_thinking(self.view, span=span, thinking=result.text, counter=self.counter,
                                             config=self.summarize_config, meta=meta, block_tokens=block_tokens)
            except EmptyThinkingError as exc:
                meta["fallback"] = str(exc)
        return fold(self.view, span=span, counter=self.counter, config=self.fold_config, meta=meta,
                    block_tokens=block_tokens)

    def _record(self, new: View, ev: Event, stats: RoundStats) -> None:
        self.store.append_event(self.session_id, ev, branch=self.branch)  # never an event that was not applied
        self.view = new
        self._events.append(ev)
        stats.actions.append({"kind": ev.kind, "seq": ev.seq, "covers": len(ev.covers),
                              **{k: v for k, v in ev.meta.items() if k != "stubs"}})

    # --- drivers -----------------------------------------------------------------------------------------------
    def prepare(self, messages: Sequence[Any] | None = None, *, outside_tokens: int = 0) -> list[dict[str, Any]]:
        """Ingest `messages`, let the policy act, and return the validated view to send to the model.

        `outside_tokens`: what the request carries beside the view (tool schemas, a separate system prompt); the
        budget guard counts it.
        """
        with self._lock:
            for attempt in range(_WRITE_RETRIES + 1):
                try:
                    return self._prepare_round(messages, outside_tokens)
                except ConcurrentWriteError:  # another writer moved this branch on: take its writes in, redo
                    if attempt == _WRITE_RETRIES:
                        raise
                    self._refresh()
        raise AssertionError("unreachable")  # pragma: no cover

    def _prepare_round(self, messages: Sequence[Any] | None, outside_tokens: int = 0) -> list[dict[str, Any]]:
        steps = self._round(messages, outside_tokens)
        try:
            step = next(steps)
            while True:
                if isinstance(step, concurrent.futures.Future):
                    concurrent.futures.wait([step])
                    step = steps.send(None)
                else:
                    step = steps.send(self._call_thinker_sync(step))
        except StopIteration as done:
            return done.value

    def _round(self, messages: Sequence[Any] | None, outside_tokens: int) -> _Round:
        """One round, sans IO: it yields what has to be waited for (a background job's future, or a request for
        the thinker) and is sent the result; prepare() and aprepare() differ only in how they wait."""
        t0 = time.perf_counter()
        stats = self._begin(messages)
        pending = self._job_to_wait_for()
        if pending is not None:
            t1 = time.perf_counter()
            yield pending
            stats.thinker_ms += (time.perf_counter() - t1) * 1000
        self._collect_background(stats)
        plan = self._plan(stats)
        try:
            request = next(plan)
            while True:
                t1 = time.perf_counter()
                result = yield request
                stats.thinker_ms += (time.perf_counter() - t1) * 1000
                request = plan.send(result)
        except StopIteration:
            pass
        return self._finish(stats, t0, outside_tokens)

    async def aprepare(self, messages: Sequence[Any] | None = None, *,
                       outside_tokens: int = 0) -> list[dict[str, Any]]:
        """Async twin of prepare(): the same plan, with `await thinker.athink`. Waiting for the session (another
        coroutine or thread is preparing on it) never blocks the event loop."""
        async with self._lock:
            for attempt in range(_WRITE_RETRIES + 1):
                try:
                    return await self._aprepare_round(messages, outside_tokens)
                except ConcurrentWriteError:
                    if attempt == _WRITE_RETRIES:
                        raise
                    self._refresh()
        raise AssertionError("unreachable")  # pragma: no cover

    async def _aprepare_round(self, messages: Sequence[Any] | None,
                              outside_tokens: int = 0) -> list[dict[str, Any]]:
        steps = self._round(messages, outside_tokens)
        try:
            step = next(steps)
            while True:
                if isinstance(step, concurrent.futures.Future):
                    await asyncio.wrap_future(step)
                    step = steps.send(None)
                    continue
                try:
                    result: ThinkResult | BaseException = await self.thinker.athink(step)  # type: ignore
                except Exception as exc:  # any thinker failure becomes a recorded fallback
                    result = exc
                step = steps.send(result)
        except StopIteration as done:
            return done.value

    def _call_thinker_sync(self, request: ThinkRequest) -> ThinkResult | BaseException:
        try:
            return self.thinker.think(request)  # type: ignore[union-attr]
        except Exception as exc:  # any thinker failure becomes a recorded fallback
            return exc

    def _begin(self, messages: Sequence[Any] | None) -> RoundStats:
        stats = RoundStats()
        new = self._ingest(messages, allow_open_tail=False, stats=stats) if messages is not None else []
        stats.round, stats.new_messages = self.rounds, len(new)
        return stats

    def _job_to_wait_for(self) -> concurrent.futures.Future | None:
        """The running background fold, when the hard budget cannot be kept without it; else None.

        Never a model decision: at the hard budget the budget rule acts at once ("decision pending") and the
        decision is re-checked against the view when it arrives, so the agent does not wait on the model."""
        job = self._job
        if job is None or job.action is None or job.future.done() or not self._over_budget():
            return None
        return job.future

    def _over_budget(self) -> bool:
        budget = getattr(self.policy.config, "budget_tokens", None)
        return budget is not None and self.view.tokens > budget

    def _start_background(self, stats: RoundStats) -> None:
        """Plan a thinking fold at the soft watermark and run the thinker off the critical path."""
        plan_ahead = getattr(self.policy, "plan_ahead", None)
        if not self.background or self._job is not None or plan_ahead is None:
            return
        if getattr(self.policy, "judge", None) is not None:  # the model decides, off the critical path
            ctx = self._context()
            decision = self.policy.thinking_request(self.view, ctx, getattr(self, "_decided_at", None))
            if decision is None:
                return
            if self._executor is None:
                self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1,
                                                                       thread_name_prefix="agentmem-fold")
            snapshot = self.view.copy()
            decided: concurrent.futures.Future = concurrent.futures.Future()
            future = self._executor.submit(self._decide_off_path, snapshot, ctx, decision, decided)
            self._job = _BackgroundFold(action=None, future=future, planned_round=self.rounds,
                                        started=time.perf_counter(), branch=self.branch, view=snapshot,
                                        decided=decided)
            self._decided_at = self.view.tokens
            stats.actions.append({"kind": "planned", "decision": True, "background": True})
            return
        action = plan_ahead(self.view, self._context())
        if action is None:
            return
        request = thinking_request(self.view, span=action.span, task=self.task, counter=self.counter,
                                   config=self.summarize_config)
        if self.thinker_timeout_s:
            request = request.model_copy(update={"timeout_s": self.thinker_timeout_s})
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="agentmem-fold")
        future = self._executor.submit(self.thinker.think, request)  # type: ignore[union-attr]
        self._job = _BackgroundFold(action=action, future=future, planned_round=self.rounds,
                                    started=time.perf_counter(), branch=self.branch)
        stats.actions.append({"kind": "planned", "covers": len(action.span), "background": True})

    def _collect_background(self, stats: RoundStats) -> None:
        """Apply a finished background fold at this round boundary (an ordinary event), or keep waiting."""
        job = self._job
        if job is None:
            return
        if not job.future.done():
            if (job.action is None and not job.consumed and job.decided is not None and job.decided.done()
                    and job.branch == self.branch and self._over_budget()):
                job.consumed = True  # the model's choice now; the job stays until the worker's folds end
                self._apply_decision(stats, job, job.decided.result(), {}, at_hard_budget=True)
            return
        self._job = None
        if job.consumed:  # applied at the hard budget already: the thinking folds came too late
            stats.rejected.append("background thinking folds dropped: their decision was applied at the hard "
                                  "budget without them")
            return
        if job.branch != self.branch:  # planned on another branch: its span may hold other content here
            stats.rejected.append(f"background {'decision' if job.action is None else 'fold'} dropped: planned on "
                                  f"branch {job.branch}")
            return
        if job.action is None:
            self._apply_decision(stats, job, *job.future.result())
            return
        meta: dict[str, Any] = {"policy": getattr(self.policy, "name", "?"), "reason": job.action.reason,
                                "background": True, "planned_round": job.planned_round,
                                "wall_s": round(time.perf_counter() - job.started, 3)}
        exc = job.future.exception()
        try:
            new, ev = self._fold_with(job.action.span, exc if exc is not None else job.future.result(), meta)
        except EventError as err:  # the span changed meanwhile (e.g. a synchronous fold took it): drop the job
            stats.rejected.append(f"background fold dropped: {err}")
            return
        self._record(new, ev, stats)

    def _apply_decision(self, stats: RoundStats, job: _BackgroundFold, result: ThinkResult | BaseException,
                        folds: Mapping[tuple[str, ...], ThinkResult | BaseException], *,
                        at_hard_budget: bool = False) -> None:
        """A background decision (and the thinking folds ready for it), re-checked against the view now: what
        still fits is applied through the one mutation path, the rest logged stale. A fold whose thinking is not
        ready (or whose span changed) is extractive: no model call on the critical path."""
        record = None
        actions: list[Action] = []
        if not isinstance(result, BaseException):
            actions, record = self.policy.judge(self.view, self._context(), result.answer or result.text,
                                                asked_on=job.view)
        self._log_decision(stats, record, result, background=True,
                           late={"asked_round": job.planned_round, "rounds_late": self.rounds - job.planned_round,
                                 "wall_s": round(time.perf_counter() - job.started, 3),
                                 **({"at_hard_budget": True} if at_hard_budget else {})})
        for action in actions:
            if isinstance(action, FoldAction) and action.mode == "think" and action.span not in folds:
                action = action.model_copy(update={  # no model call on the critical path
                    "mode": "extractive", "reason": f"{action.reason}; extractive: no thinking fold of this "
                                                    "span ready"})
            plan = self._apply(action, stats)
            try:
                next(plan)
                while True:
                    plan.send(folds[action.span])
            except StopIteration:
                pass
        self._decided_at = self.view.tokens

    def close(self) -> None:
        """Wait for a running background fold and stop the worker."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    def _finish(self, stats: RoundStats, t0: float, outside_tokens: int = 0) -> list[dict[str, Any]]:
        if self.budget_guard is not None:  # after the policy: evictions through the one mutation path
            for action in guard_actions(self.view, self.budget_guard, outside_tokens=outside_tokens):
                list(self._apply(action, stats))  # an eviction never asks a thinker
        self._start_background(stats)
        self.view.validate(allow_open_tail=False)
        rendered = self.view.render()
        stats.raw_tokens = self.raw_tokens
        stats.view_tokens = self.view.tokens
        stats.bookkeeping_ms = (time.perf_counter() - t0) * 1000 - stats.thinker_ms
        stats.branch = self.branch
        self.last = stats
        _set_point(self._key, self.point)
        if self.budget_guard is not None:  # warns, or raises OverBudgetError before the model is called
            stats.budget = check_budget(self.view, self.budget_guard, outside_tokens=outside_tokens)
        return rendered

    # --- archive access (agentmem.archive) ------------------------------------------------------------------
    def find_archived(self, *, ids: Sequence[str] = (), query: str | None = None, limit: int = 6) -> list[Message]:
        """Archived messages by id or query, exact matches first (see agentmem.archive.find_archived)."""
        return archive.find_archived(self.store, self.session_id, self.view, ids=ids, query=query, limit=limit)

    def recall_text(self, *, ids: Sequence[str] = (), query: str | None = None,
                    budget_tokens: int | None = None, page: int = 1) -> str:
        """One page of archived content for the agent's own recall tool call (see agentmem.archive.recall_text)."""
        return archive.recall_text(self.store, self.session_id, self.view, counter=self.counter, ids=ids,
                                   query=query, page=page, page_tokens=budget_tokens or self.recall_config.budget_tokens,
                                   limit=self.recall_config.max_messages)


def _contents(messages: Sequence[Any]) -> list[Any]:
    """The content object of each message (dicts at C speed); an in-place edit replaces it."""
    try:
        return list(map(_CONTENT, messages))
    except (KeyError, TypeError):  # not all dicts with a "content" key
        pass
    try:
        return list(map(_CONTENT_ATTR, messages))  # LangChain / litellm / Message objects
    except AttributeError:
        return [_content_of(m) for m in messages]


_CONTENT = operator.itemgetter("content")  # the C-speed path for dict messages
_CONTENT_ATTR = operator.attrgetter("content")  # and for message objects


def _content_of(message: Any) -> Any:
    return message.get("content") if isinstance(message, Mapping) else getattr(message, "content", None)


def _identical_prefix(messages: Sequence[Any], sent: list[Any], contents: list[Any]) -> int:
    """How many leading messages equal those passed last time, with equal content objects.

    C-level list comparisons (identity short-cuts each element; a rebuilt but equal dict compares equal at C
    speed too): this is what keeps the per-round check flat at 10,000 rounds. The content pass catches an edit
    made in place (same dict, new content), which the first comparison cannot see."""
    n = min(len(messages), len(sent))
    head = list(messages[:n])
    same = _first_difference(head, sent)
    return _first_difference(_contents(head[:same]), contents)


def _first_difference(a: list[Any], b: list[Any], step: int = 512) -> int:
    """Index of the first position where a and b differ (or the shorter length): C-speed slice comparisons,
    then one short scan."""
    n = min(len(a), len(b))
    if (a if len(a) == n else a[:n]) == (b if len(b) == n else b[:n]):
        return n
    i = 0
    while i < n and a[i:i + step] == b[i:i + step]:
        i += step
    return next((j for j in range(i, min(i + step, n)) if a[j] != b[j]), min(i + step, n))
