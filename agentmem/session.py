"""One agent session through the middleware: ingest → decide → apply → record → validate → render.

Planning is written once, as a generator that *yields* thinker requests and receives their results (sans-IO).
The sync driver answers with `thinker.think`, the async driver with `await thinker.athink`; everything else —
which actions, which primitive, what is recorded — is the same code for both.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
import uuid
from collections.abc import Generator, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from agentmem import archive
from agentmem.actions import Action, EvictAction, FoldAction, RecallAction, UnrecallAction
from agentmem.messages import HistoryError, Message, group_rounds, message_text, parse_message
from agentmem.primitives import (
    EmptyThinkingError,
    EvictConfig,
    FoldConfig,
    RecallConfig,
    SummarizeConfig,
    evict,
    fold,
    format_archive,
    recall,
    summarize_by_thinking,
    thinking_request,
    unrecall,
)
from agentmem.store import Store
from agentmem.thinkers.base import Thinker, ThinkRequest, ThinkResult
from agentmem.tokens import TokenCounter
from agentmem.view import BlockItem, Event, EventError, MessageItem, RecalledItem, View, build_view

__all__ = ["MemorySession", "RoundStats"]

RECALL_TOOL_NAME = archive.RECALL_TOOL_NAME  # the tool AgentMemory offers (agentmem.memory re-exports it)

_Plan = Generator[ThinkRequest, "ThinkResult | BaseException", None]


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

    def as_dict(self) -> dict[str, Any]:
        return {"round": self.round, "raw_tokens": self.raw_tokens, "view_tokens": self.view_tokens,
                "new_messages": self.new_messages, "actions": self.actions, "rejected": self.rejected,
                "bookkeeping_ms": round(self.bookkeeping_ms, 3), "thinker_ms": round(self.thinker_ms, 3)}


@dataclass
class _BackgroundFold:
    """A thinking fold planned at the soft watermark and running in a worker thread."""

    action: FoldAction
    future: concurrent.futures.Future
    planned_round: int
    started: float


class MemorySession:
    """The state of one session: its store rows, its replayed view, and the policy that manages it.

    Args:
        store: where messages and events live (nothing is ever deleted there).
        session_id: resume an existing session (its view is rebuilt by replay) or start a new one.
        policy: decides actions each round (agentmem.policies).
        thinker: answers summarize-by-thinking and policy requests; None means extractive folds only.
        model: model name used to pick the offline tokenizer.
        verify: how much of a re-sent history is compared with the store: "ends" (first and last stored
            message, O(1) per round) or "full" (every message, O(history) per round; catches any edit).
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
        verify: str = "ends",
    ):
        if verify not in ("ends", "full"):
            raise ValueError(f"verify must be 'ends' or 'full', not {verify!r}")
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
        self._lock = threading.RLock()
        self.store.ensure_session(self.session_id)
        stored = store.load_messages(self.session_id)
        events = store.load_events(self.session_id)
        self.view: View = build_view(((s.message, s.tokens) for s in stored), events, self.counter)
        self.message_count = len(stored)
        self._fingerprints: list[str] = [s.message.fingerprint() for s in stored]
        self._pending_calls: set[str] = set()
        self.raw_tokens = 3
        self.rounds = 0
        self.task = ""
        for s in stored:
            self._track(s.message, s.tokens)
        self.last: RoundStats = RoundStats(raw_tokens=self.raw_tokens, view_tokens=self.view.tokens)

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

        The agent passes its whole history each call; the stored prefix is recognised in O(1) by the
        fingerprint of its last message. A history that does not extend the stored one is rejected, unchanged.
        """
        with self._lock:
            if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
                raise HistoryError(f"messages must be a list, got {type(messages).__name__}")
            n = self.message_count
            if n:
                if len(messages) < n:
                    raise HistoryError(
                        f"history has {len(messages)} messages but session {self.session_id!r} already stored {n}; "
                        "pass the agent's whole history (or start a new session)")
                # "ends" checks the first and the last stored position in O(1); "full" re-hashes every message
                positions = range(n) if self.verify == "full" else sorted({0, n - 1})
                for i in positions:
                    if parse_message(messages[i], index=i).fingerprint() != self._fingerprints[i]:
                        raise HistoryError(
                            f"differs from the message session {self.session_id!r} stored at this position; the "
                            "history must extend what was stored (start a new session for an edited history)",
                            index=i)
            return self._append([parse_message(r, index=n + i) for i, r in enumerate(messages[n:])], first_index=n,
                                allow_open_tail=allow_open_tail)

    def _append(self, new: list[Message], *, first_index: int, allow_open_tail: bool = True) -> list[Message]:
        if not new:
            return []
        pending = set(self._pending_calls)
        seen_ids: set[str] = set()
        for i, m in enumerate(new):
            idx = first_index + i
            if m.id in seen_ids:
                raise HistoryError("duplicate message id", index=idx, message_id=m.id)
            seen_ids.add(m.id)
            if m.role == "system" and (self.message_count or i):
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
                               "a model cannot be called on it", index=first_index + len(new) - 1, message_id=new[-1].id)
        tokens = [self.counter.message(m) for m in new]
        self.store.append_messages(self.session_id, new, tokens, expected_count=self.message_count)
        for m, t in zip(new, tokens, strict=True):
            self.view.append_message(m, t)
            self._track(m, t)
        self.message_count += len(new)
        self._fingerprints.extend(m.fingerprint() for m in new)
        return new

    def record_response(self, message: Any) -> Message:
        """Store the model's reply (an assistant message dict/object) right after the current history."""
        with self._lock:
            return self._append([parse_message(message, index=self.message_count)],
                                first_index=self.message_count)[0]

    # --- planning (shared by sync and async) -----------------------------------------------------------------
    def _context(self, recall_ids: Iterable[str] = ()) -> Any:
        from agentmem.policies.base import PolicyContext

        budget = getattr(self.policy.config, "budget_tokens", None)
        return PolicyContext(task=self.task, model=self.counter.model, round=self.rounds, budget_tokens=budget,
                             recall_ids=tuple(recall_ids))

    def _plan(self, stats: RoundStats) -> _Plan:
        ctx = self._context()
        thinking: str | None = None
        request = self.policy.thinking_request(self.view, ctx)
        if request is not None:
            if self.thinker is None:
                stats.rejected.append("policy asked for a thinker but none is configured")
            else:
                result = yield request
                if isinstance(result, BaseException):
                    stats.rejected.append(f"policy thinker failed: {result}")
                else:  # a decision is the visible answer; a non-thinking model has only text
                    thinking = result.answer or result.text
        for action in self.policy.decide(self.view, ctx, thinking):
            yield from self._apply(action, stats)

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
                    new, ev = self._fold_with(action.span, result, meta)
                else:
                    if action.mode == "think":
                        meta["fallback"] = "no thinker configured"
                    new, ev = fold(self.view, span=action.span, counter=self.counter, config=self.fold_config,
                                   meta=meta)
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

    def _fold_with(self, span: Sequence[str], result: ThinkResult | BaseException,
                   meta: dict[str, Any]) -> tuple[View, Event]:
        """A summarize-by-thinking block from a thinker's result; the extractive fold when it failed or was empty."""
        if isinstance(result, BaseException):
            meta["fallback"] = f"thinker failed: {type(result).__name__}: {result}"[:500]
        else:
            meta.update(thinker=result.model, thinker_s=round(result.seconds, 3), thinker_tokens_in=result.tokens_in,
                        thinker_tokens_out=result.tokens_out)
            try:
                return summarize_by_thinking(self.view, span=span, thinking=result.text, counter=self.counter,
                                             config=self.summarize_config, meta=meta)
            except EmptyThinkingError as exc:
                meta["fallback"] = str(exc)
        return fold(self.view, span=span, counter=self.counter, config=self.fold_config, meta=meta)

    def _record(self, new: View, ev: Event, stats: RoundStats) -> None:
        self.store.append_event(self.session_id, ev)  # the log never records an event that was not applied
        self.view = new
        stats.actions.append({"kind": ev.kind, "seq": ev.seq, "covers": len(ev.covers),
                              **{k: v for k, v in ev.meta.items() if k != "stubs"}})

    # --- drivers -----------------------------------------------------------------------------------------------
    def prepare(self, messages: Sequence[Any] | None = None) -> list[dict[str, Any]]:
        """Ingest `messages`, let the policy act, and return the validated view to send to the model."""
        with self._lock:
            t0 = time.perf_counter()
            stats = self._begin(messages)
            pending = self._job_to_wait_for()
            if pending is not None:
                t1 = time.perf_counter()
                concurrent.futures.wait([pending])
                stats.thinker_ms += (time.perf_counter() - t1) * 1000
            self._collect_background(stats)
            plan = self._plan(stats)
            try:
                request = next(plan)
                while True:
                    t1 = time.perf_counter()
                    result = self._call_thinker_sync(request)
                    stats.thinker_ms += (time.perf_counter() - t1) * 1000
                    request = plan.send(result)
            except StopIteration:
                pass
            return self._finish(stats, t0)

    async def aprepare(self, messages: Sequence[Any] | None = None) -> list[dict[str, Any]]:
        """Async twin of prepare(): the same plan, with `await thinker.athink`."""
        with self._lock:
            t0 = time.perf_counter()
            stats = self._begin(messages)
            pending = self._job_to_wait_for()
            if pending is not None:
                t1 = time.perf_counter()
                await asyncio.wrap_future(pending)
                stats.thinker_ms += (time.perf_counter() - t1) * 1000
            self._collect_background(stats)
            plan = self._plan(stats)
            try:
                request = next(plan)
                while True:
                    t1 = time.perf_counter()
                    try:
                        result: ThinkResult | BaseException = await self.thinker.athink(request)  # type: ignore
                    except Exception as exc:  # any thinker failure becomes a recorded fallback
                        result = exc
                    stats.thinker_ms += (time.perf_counter() - t1) * 1000
                    request = plan.send(result)
            except StopIteration:
                pass
            return self._finish(stats, t0)

    def _call_thinker_sync(self, request: ThinkRequest) -> ThinkResult | BaseException:
        try:
            return self.thinker.think(request)  # type: ignore[union-attr]
        except Exception as exc:  # any thinker failure becomes a recorded fallback
            return exc

    def _begin(self, messages: Sequence[Any] | None) -> RoundStats:
        new = self.ingest(messages, allow_open_tail=False) if messages is not None else []
        return RoundStats(round=self.rounds, new_messages=len(new))

    def _job_to_wait_for(self) -> concurrent.futures.Future | None:
        """The running background fold, when the hard budget cannot be kept without it; else None."""
        if self._job is None or self._job.future.done() or not self._over_budget():
            return None
        return self._job.future

    def _over_budget(self) -> bool:
        budget = getattr(self.policy.config, "budget_tokens", None)
        return budget is not None and self.view.tokens > budget

    def _start_background(self, stats: RoundStats) -> None:
        """Plan a thinking fold at the soft watermark and run the thinker off the critical path."""
        plan_ahead = getattr(self.policy, "plan_ahead", None)
        if not self.background or self._job is not None or plan_ahead is None:
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
                                    started=time.perf_counter())
        stats.actions.append({"kind": "planned", "covers": len(action.span), "background": True})

    def _collect_background(self, stats: RoundStats) -> None:
        """Apply a finished background fold at this round boundary (an ordinary event), or keep waiting."""
        job = self._job
        if job is None or not job.future.done():
            return
        self._job = None
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

    def close(self) -> None:
        """Wait for a running background fold and stop the worker."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    def _finish(self, stats: RoundStats, t0: float) -> list[dict[str, Any]]:
        self._start_background(stats)
        self.view.validate(allow_open_tail=False)
        rendered = self.view.render()
        stats.raw_tokens = self.raw_tokens
        stats.view_tokens = self.view.tokens
        stats.bookkeeping_ms = (time.perf_counter() - t0) * 1000 - stats.thinker_ms
        self.last = stats
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
