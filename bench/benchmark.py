"""Benchmark: agentmem policies against what people use today, on the same real trajectories and token budget.

    python bench/benchmark.py                      # SWE runs with 80+ rounds @8000, 20 longest tau-bench @4000
    python bench/benchmark.py --quick              # 3 SWE + 5 tau runs (a smoke test, ~1 min)
    python bench/benchmark.py --local-subset 1     # also budget/thinker with the local thinker on 1 SWE run

Rows: NoOp (the raw history), Window, ObservationMasking, RunningSummary (agentmem baselines in policies/), the real
langmem `summarize_messages`, LangChain v1's `SummarizationMiddleware` and langchain_core `trim_messages`,
BudgetPolicy and ThinkerPolicy. Every row sees the same causal prefixes; metrics come from agentmem.metrics
(footprint, carried-value retention, prefix reuse, cost). langmem and the middleware need a chat model: they get
`ExtractiveChatModel`, a deterministic local LangChain chat model that writes agentmem's own extractive summary (the
summarizer RunningSummary and BudgetPolicy use without a thinker), so the rows differ by policy, not by
summarizer. Policies that are not registered (e.g. "thinker" before it lands) are skipped with a printed note; a
spec "NAME@THINKER" runs a policy with a thinker ("budget@local").

Writes OUT/benchmark.json (all metrics, per group and per trajectory) and OUT/benchmark.png, prints one table,
and a second one: BudgetPolicy's lead over every other row on each retention column, in points, with its 95 %
interval over runs (a paired bootstrap, `agentmem.metrics.bootstrap_retention`): an interval that holds 0 is a
lead this sample of runs cannot tell from chance. Both tables go to OUT/benchmark.md.
"""

import argparse
import json
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from langchain_core.language_models import BaseChatModel  # noqa: E402  (the bench extra)
from langchain_core.messages import (  # noqa: E402
    AIMessage,
    BaseMessage,
    HumanMessage,
    convert_to_messages,
    convert_to_openai_messages,
    trim_messages,
)
from langchain_core.outputs import ChatGeneration, ChatResult  # noqa: E402

from agentmem.messages import parse_message  # noqa: E402
from agentmem.metrics import bootstrap_retention, carried_values_by_round, summarize_rounds  # noqa: E402
from agentmem.primitives import FoldConfig, extractive_summary  # noqa: E402
from agentmem.replay import Trajectory, load_trajectories, machine_info, replay, replay_views  # noqa: E402
from agentmem.store import Store  # noqa: E402
from agentmem.tokens import TokenCounter  # noqa: E402
from agentmem.view import BlockItem, MessageItem  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
DEFAULT_SPECS = ["noop", "window", "observation_masking", "masking_window", "running_summary", "langmem",
                 "summarization_middleware", "trim_messages", "budget", "thinker"]
# rows that are a registered policy with a fixed config: spec -> (policy, config)
SPEC_POLICIES = {"masking_window": ("observation_masking", {"bounded": True})}
EXTERNAL = {"langmem", "trim_messages", "summarization_middleware"}
LABELS = {
    "noop": "NoOp (raw history)",
    "window": "Window",
    "observation_masking": "ObservationMasking",
    "masking_window": "ObservationMasking + window (bounded)",
    "running_summary": "RunningSummary",
    "langmem": "langmem summarize_messages",
    "summarization_middleware": "langchain SummarizationMiddleware",
    "trim_messages": "langchain trim_messages",
    "budget": "BudgetPolicy",
    "thinker": "ThinkerPolicy",
}
SUMMARY_TOKENS = FoldConfig().max_block_tokens  # default summary size of the langmem baseline (tests)
# langmem's running summary in the benchmark: this share of the budget beside the system message (at most
# BudgetPolicy's memory allotment); its max_tokens is the rest, so summary + unsummarized messages peak at the budget
LANGMEM_SUMMARY_SHARE = 0.4


# --- the summarizer langmem gets: agentmem's extractive fold, as a LangChain chat model ----------------------
class ExtractiveChatModel(BaseChatModel):
    """A deterministic local chat model that answers any summarization prompt with agentmem's extractive fold (a
    short state section, then the most salient lines of the tool outputs in their original wording) of the
    conversation it is given, within `max_tokens`. It calls no network model. An existing summary quoted in the final prompt (langmem's "This is summary of the conversation so
    far: ...") is merged in, exactly like re-folding a block. Records its own wall time in `seconds`."""

    max_tokens: int = SUMMARY_TOKENS
    model_name: str = "agentmem-extractive"
    seconds: float = 0.0
    calls: int = 0

    @property
    def _llm_type(self) -> str:
        return "agentmem-extractive"

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None,
                  **kwargs: Any) -> ChatResult:
        t0 = time.perf_counter()
        counter = TokenCounter(None)
        *span, prompt = messages
        items: list[Any] = []
        existing = _existing_summary(prompt.content if isinstance(prompt.content, str) else "")
        if existing:
            items.append(BlockItem(key="summary", kind="fold", covers=(), text="[summary]\n" + existing, tokens=0))
        names: dict[str, str] = {}
        for k, msg in enumerate(span):
            d = convert_to_openai_messages(msg)
            if d.get("role") not in ("system", "user", "assistant", "tool"):
                continue
            m = parse_message(d, message_id=f"s{k}")
            for tc in m.tool_calls:
                names[tc.id] = tc.name
            items.append(MessageItem(message=m, pos=k + 1, tokens=0))
        lines = extractive_summary(items, names, FoldConfig(max_block_tokens=self.max_tokens), counter,
                                   budget=self.max_tokens)
        self.seconds += time.perf_counter() - t0
        self.calls += 1
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content="\n".join(lines)))])


# how langmem's prompt quotes the running summary it extends (ExtractiveChatModel merges it like a block)
LANGMEM_SUMMARY_HEAD = "This is summary of the conversation so far: "


def _existing_summary(text: str) -> str:
    if not text.startswith(LANGMEM_SUMMARY_HEAD):
        return ""
    body = text[len(LANGMEM_SUMMARY_HEAD):]
    cut = body.rfind("\n\nExtend this summary")
    return body[:cut] if cut >= 0 else body


# --- library baselines as history -> view functions -------------------------------------------------------------
class _LangChainBaseline:
    """Shared plumbing: convert the growing history to LangChain messages once, count tokens with agentmem's
    counter, and map returned messages back to the exact original dicts (new ones, like langmem's summary
    message, are converted)."""

    def __init__(self, traj: Trajectory, budget: int):
        self.budget = budget
        self.counter = TokenCounter(traj.model)
        self.lc: list[BaseMessage] = []
        self.originals: dict[str, dict[str, Any]] = {}
        self._tokens: dict[str, int] = {}

    def _extend(self, history: Sequence[Mapping[str, Any]]) -> None:
        new = history[len(self.lc):]
        if new:
            self.lc.extend(convert_to_messages([dict(m) for m in new]))
            for m in new:
                self.originals[m["id"]] = dict(m)

    def count(self, msg: BaseMessage) -> int:
        if msg.id and msg.id in self._tokens:
            return self._tokens[msg.id]
        n = self.counter.message(self.to_dict(msg))
        if msg.id:
            self._tokens[msg.id] = n
        return n

    def count_list(self, msgs: Any) -> int:
        return sum(self.count(m) for m in convert_to_messages(list(msgs)))

    def to_dict(self, msg: BaseMessage) -> dict[str, Any]:
        if msg.id and msg.id in self.originals:
            return self.originals[msg.id]
        return convert_to_openai_messages(msg)


class TrimBaseline(_LangChainBaseline):
    """langchain_core.messages.trim_messages as its docs recommend for chat models: keep the last messages within
    the budget, keep the system message, start on a message a provider accepts first (a human or an AI turn, so a
    tool result is never orphaned). The task message is dropped once it no longer fits, as trim_messages does."""

    def __init__(self, traj: Trajectory, budget: int):
        super().__init__(traj, budget)

        def per_message(msg):  # trim_messages treats a counter annotated BaseMessage as per-message
            return self.count(msg)

        per_message.__annotations__ = {"msg": BaseMessage, "return": int}
        self._per_message = per_message

    def __call__(self, history: Sequence[Mapping[str, Any]]) -> tuple[list[dict[str, Any]], float, list]:
        self._extend(history)
        before = len(self.lc)
        kept = trim_messages(self.lc, max_tokens=self.budget - 3, token_counter=self._per_message,
                             strategy="last", include_system=True, start_on=("human", "ai"), allow_partial=False)
        actions = [{"kind": "trim", "dropped": before - len(kept)}] if len(kept) < before else []
        return [self.to_dict(m) for m in kept], 0.0, actions


class LangMemBaseline(_LangChainBaseline):
    """langmem.short_term.summarize_messages with a running summary kept across rounds (its documented use) and
    summarizer = ExtractiveChatModel. langmem lets unsummarized messages grow to `max_tokens` *beside* the running
    summary, so its views peak at max_tokens + the summary. With `fit_budget` (the benchmark's setting) it gets
    max_summary_tokens = `summary_tokens` and max_tokens = budget - summary_tokens, so it peaks at the budget like
    every other row; otherwise max_tokens = the budget."""

    def __init__(self, traj: Trajectory, budget: int, summary_tokens: int = SUMMARY_TOKENS, *,
                 fit_budget: bool = False):
        super().__init__(traj, budget)
        from langmem.short_term import summarize_messages

        self._summarize = summarize_messages
        self.summary_tokens = summary_tokens
        self.max_tokens = budget - summary_tokens - 3 if fit_budget else budget - 3
        self.model = ExtractiveChatModel(max_tokens=summary_tokens)
        self.running = None

    def __call__(self, history: Sequence[Mapping[str, Any]]) -> tuple[list[dict[str, Any]], float, list]:
        self._extend(history)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # langmem warns when its own pre-trim finds no human
            result = self._summarize(list(self.lc), running_summary=self.running, model=self.model,
                                     max_tokens=self.max_tokens, max_summary_tokens=self.summary_tokens,
                                     token_counter=self.count_list)
        actions = []
        if result.running_summary is not None and result.running_summary is not self.running:
            actions.append({"kind": "summarize", "summarized": len(result.running_summary.summarized_message_ids)})
        self.running = result.running_summary
        # the extractive "model" is no model: its time is bookkeeping, as agentmem's extractive fold's is
        return [self.to_dict(m) for m in result.messages], 0.0, actions


SUMMARY_PREFIX = "Here is a summary of the conversation to date:"  # the message SummarizationMiddleware writes


class SummarizationMiddlewareBaseline(_LangChainBaseline):
    """langchain.agents.middleware.SummarizationMiddleware, LangChain v1's middleware for `create_agent`, driven the
    way create_agent drives it: its `before_model` hook runs on the graph state before every model call, and the
    update it returns (remove every message, then its summary message and the messages it preserved) becomes the
    state the next messages are appended to. The system prompt stays outside the state (create_agent's
    `system_prompt`); the task message is state like any other, as it is under create_agent.

    Configured as a user bounding the request to the budget would: trigger = the tokens the budget leaves beside
    the system prompt, keep = that less the summary's size (the langmem row's summary size, so both libraries get
    the same room for a summary), token_counter = agentmem's counter; everything else at its default (the messages
    to summarize are trimmed to their newest 4,000 tokens first). summarizer = the extractive fold, as langmem's
    (a previous summary among the messages is merged like a block), so the rows differ by what the library does
    with the summary, not by the summarizer."""

    def __init__(self, traj: Trajectory, budget: int, summary_tokens: int):
        super().__init__(traj, budget)
        from langchain.agents.middleware import SummarizationMiddleware
        from langchain_core.runnables import RunnableLambda

        first = traj.messages[0] if traj.messages else {}
        self.system = dict(first) if first.get("role") == "system" else None
        system_tokens = self.counter.message({k: v for k, v in first.items() if k != "id"}) if self.system else 0
        room = budget - system_tokens - 3
        self.summarizer = ExtractiveChatModel(max_tokens=summary_tokens)
        self.middleware = SummarizationMiddleware(
            self.summarizer, trigger=("tokens", room), keep=("tokens", max(1, room - summary_tokens - 16)),
            token_counter=self.count_list, summarizer=RunnableLambda(self._summary))
        self.state: list[BaseMessage] = []  # the graph state: every message but the system prompt, as updated

    def _summary(self, messages: list[BaseMessage]) -> str:
        """The extractive fold of `messages`; a previous summary among them is re-folded like a block."""
        prompt: list[BaseMessage] = []
        earlier = ""
        for msg in messages:
            text = msg.content if isinstance(msg.content, str) else ""
            if isinstance(msg, HumanMessage) and text.startswith(SUMMARY_PREFIX):
                earlier = text[len(SUMMARY_PREFIX):].strip()
            else:
                prompt.append(msg)
        closing = HumanMessage(content=LANGMEM_SUMMARY_HEAD + earlier if earlier else "Summarize the conversation.")
        return str(self.summarizer.invoke([*prompt, closing]).content)

    def __call__(self, history: Sequence[Mapping[str, Any]]) -> tuple[list[dict[str, Any]], float, list]:
        before = len(self.lc)
        self._extend(history)
        self.state.extend(self.lc[max(before, 1 if self.system else 0):])
        update = self.middleware.before_model({"messages": self.state}, None)
        actions = []
        if update is not None:
            _remove_all, *kept = update["messages"]
            actions.append({"kind": "summarize", "summarized": len(self.state) - len(kept) + 1})
            self.state = kept
        view = [self.to_dict(m) for m in self.state]
        return ([self.system] if self.system else []) + view, 0.0, actions


def library_baseline(name: str, traj: Trajectory, budget: int) -> _LangChainBaseline:
    """The adapter of one library row (a name in EXTERNAL) for one trajectory, as the replay benchmark and the
    appworld-lite runs configure it: langmem and the middleware get langmem's summary size, trim_messages none."""
    if name == "trim_messages":
        return TrimBaseline(traj, budget)
    if name == "summarization_middleware":
        return SummarizationMiddlewareBaseline(traj, budget, langmem_summary_tokens(traj, budget))
    if name == "langmem":
        return LangMemBaseline(traj, budget, langmem_summary_tokens(traj, budget), fit_budget=True)
    raise ValueError(f"{name!r} is not a library row; known: {', '.join(sorted(EXTERNAL))}")


# --- running -------------------------------------------------------------------------------------------------
def parse_spec(spec: str) -> tuple[str, str | None]:
    name, _, thinker = spec.partition("@")
    return name.strip(), (thinker.strip() or None)


def run_spec(spec: str, trajectories: Sequence[Trajectory], budget: int, carried: Mapping[str, Any],
             thinkers: dict[str, Any]) -> list[dict[str, Any]]:
    """All rounds of one spec over the trajectories (one SQLite file store per spec, one session per run)."""
    name, thinker_spec = parse_spec(spec)
    rounds: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "bench.db") if name not in EXTERNAL else None
        try:
            for traj in trajectories:
                if name in EXTERNAL:
                    it = replay_views(traj, library_baseline(name, traj, budget), carried=carried[traj.id])
                else:
                    thinker = None
                    if thinker_spec:
                        if thinker_spec not in thinkers:
                            from agentmem.memory import resolve_thinker

                            thinkers[thinker_spec] = resolve_thinker(thinker_spec)
                        thinker = thinkers[thinker_spec]
                    policy, config = SPEC_POLICIES.get(name, (name, {}))
                    it = replay(traj, policy=policy, budget_tokens=budget, thinker=thinker, store=store,
                                session_id=f"{spec}:{traj.id}"[:200], carried=carried[traj.id], **config)
                for rr in it:
                    rounds.append(rr.record)
        finally:
            if store is not None:
                store.close()
    return rounds


def memory_allotment(traj: Trajectory, budget: int) -> int:
    """BudgetPolicy's memory allotment for this run: memory_ratio of the budget left after the pinned task."""
    from agentmem.policies import BudgetConfig

    counter = TokenCounter(traj.model)
    head = traj.messages[:2] if traj.messages and traj.messages[0]["role"] == "system" else traj.messages[:1]
    pinned = sum(counter.message({k: v for k, v in m.items() if k != "id"}) for m in head)
    return max(SUMMARY_TOKENS // 4, int((budget - pinned) * BudgetConfig().memory_ratio))


def langmem_summary_tokens(traj: Trajectory, budget: int) -> int:
    """langmem's summary size: LANGMEM_SUMMARY_SHARE of what the budget leaves beside the system message (which
    langmem keeps), at most BudgetPolicy's memory allotment; below that langmem could never fit and never act."""
    counter = TokenCounter(traj.model)
    system = traj.messages[0] if traj.messages and traj.messages[0]["role"] == "system" else None
    system_tokens = counter.message({k: v for k, v in system.items() if k != "id"}) if system else 0
    return max(64, min(memory_allotment(traj, budget), int((budget - system_tokens) * LANGMEM_SUMMARY_SHARE)))


def select(path: Path, *, min_rounds: int = 0, longest: int | None = None, limit: int | None = None
           ) -> list[Trajectory]:
    trajs = [t for t in load_trajectories(path) if t.rounds >= min_rounds]
    trajs.sort(key=lambda t: (-t.rounds, t.id))
    if longest is not None:
        trajs = trajs[:longest]
    if limit is not None:
        trajs = trajs[:limit]
    return trajs


def _fmt(v: Any, kind: str = "f1") -> str:
    if v is None:
        return "-"
    if kind == "pct":
        return f"{v:.1%}"
    if kind == "int":
        return f"{v:,.0f}"
    if kind == "f2":
        return f"{v:.2f}"
    return f"{v:.1f}"


def row_of(group: str, spec: str, summary: Mapping[str, Any]) -> dict[str, Any]:
    fp, ret, cost = summary["footprint"], summary["retention"], summary["cost"]
    name, thinker = parse_spec(spec)
    label = LABELS.get(name, name) + (f" + {thinker} thinker" if thinker else "")
    return {
        "group": group, "spec": spec, "policy": label,
        "peak_ratio": fp["peak_ratio"], "mean_ratio": fp["mean_ratio"], "max_view": fp["max_peak_view"],
        "slope_after_80": fp.get("slope_view_after_80"), "retention": ret["retention"],
        "retention_old": ret.get("retention_old_10"), "in_context": ret.get("in_context"),
        "in_context_old": ret.get("in_context_old_10"), "carried": ret["carried"], "carried_old": ret["carried_old"],
        "prefix_reuse": summary["prefix_reuse"], "ms_p50": cost["ms_per_round_p50"],
        "ms_p95": cost["ms_per_round_p95"], "thinker_s_per_fold": cost["thinker_s_per_fold"],
        "invalid_views": summary.get("invalid_views", 0),
        "actions": summary["actions"],
    }


COLUMNS = [
    ("group", "group", None), ("policy", "policy", None), ("peak view/raw", "peak_ratio", "pct"),
    ("mean view/raw", "mean_ratio", "pct"), ("max view tok", "max_view", "int"),
    ("slope>80 tok/rd", "slope_after_80", "f1"), ("present", "retention", "pct"),
    ("present 10+", "retention_old", "pct"), ("in context", "in_context", "pct"),
    ("in context 10+", "in_context_old", "pct"), ("prefix reuse", "prefix_reuse", "pct"),
    ("invalid views", "invalid_views", "int"), ("ms/rd p50", "ms_p50", "f2"), ("ms/rd p95", "ms_p95", "f2"),
    ("thinker s/fold", "thinker_s_per_fold", "f1"),
]


# the retention columns the lead table compares: (header, row key = agentmem.metrics.RETENTION_COUNTS key)
LEAD_COLUMNS = [("present", "retention"), ("present 10+", "retention_old"), ("in context", "in_context"),
                ("in context 10+", "in_context_old")]
LEAD_SPEC = "budget"  # the row every other row is compared with


def add_intervals(rows: Sequence[dict[str, Any]], per_spec: Mapping[str, Mapping[str, Any]]) -> None:
    """Adds to each row of one group the 95 % interval over runs of its retention columns (`ci`: [low, high]) and,
    to every row beside BudgetPolicy's, BudgetPolicy's lead over it (`lead`: estimate, low, high, runs; paired)."""
    ours = (per_spec.get(LEAD_SPEC) or {}).get("per_trajectory")
    for row in rows:
        runs = per_spec[row["spec"]]["per_trajectory"]
        row["ci"] = {}
        for _header, key in LEAD_COLUMNS:
            ci = bootstrap_retention(runs, key)
            row["ci"][key] = [ci["low"], ci["high"]]
        if ours is not None and row["spec"] != LEAD_SPEC:
            row["lead"] = {key: bootstrap_retention(ours, key, baseline=runs) for _header, key in LEAD_COLUMNS}


def interval_cell(lead: Mapping[str, Any] | None) -> str:
    """A difference with its interval (a `bootstrap_retention` / `bootstrap_ratio` result) in points:
    `+9.5 [+5.1, +14.0]`; `-` when there is nothing to compare. The lead and gain columns of every bench script."""
    if not lead or lead.get("estimate") is None:
        return "-"
    return f"{lead['estimate'] * 100:+.1f} [{lead['low'] * 100:+.1f}, {lead['high'] * 100:+.1f}]"


def lead_table(rows: Sequence[Mapping[str, Any]]) -> list[list[str]]:
    """Per group: BudgetPolicy's own figures with their intervals (%), then one line per compared row with
    BudgetPolicy's lead over it on each retention column (points)."""
    out = []
    groups = list(dict.fromkeys(r["group"] for r in rows))
    ordered = sorted(rows, key=lambda r: (groups.index(r["group"]), r["spec"] != LEAD_SPEC))  # stable: ours first
    for r in ordered:
        if r["spec"] == LEAD_SPEC and r.get("ci"):
            out.append([str(r["group"]), f"{r['policy']} itself (%)",
                        *(f"{r[key] * 100:.1f} [{r['ci'][key][0] * 100:.1f}, {r['ci'][key][1] * 100:.1f}]"
                          if r.get(key) is not None and r["ci"][key][0] is not None else "-"
                          for _h, key in LEAD_COLUMNS)])
        elif r.get("lead"):
            out.append([str(r["group"]), str(r["policy"]),
                        *(interval_cell(r["lead"].get(key)) for _h, key in LEAD_COLUMNS)])
    return out


def lead_markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    head = ["group", "BudgetPolicy's lead over", *(h for h, _k in LEAD_COLUMNS)]
    lines = ["| " + " | ".join(head) + " |", "|---|---|" + "---:|" * len(LEAD_COLUMNS)]
    lines += ["| " + " | ".join(cells) + " |" for cells in lead_table(rows)]
    return "\n".join(lines)


def markdown_table(rows: Sequence[Mapping[str, Any]]) -> str:
    head = "| " + " | ".join(c[0] for c in COLUMNS) + " |"
    sep = "|" + "|".join("---" if c[2] is None else "---:" for c in COLUMNS) + "|"
    body = ["| " + " | ".join(str(r[c[1]]) if c[2] is None else _fmt(r[c[1]], c[2]) for c in COLUMNS) + " |"
            for r in rows]
    return "\n".join([head, sep, *body])


def _print_rich(title: str, headers: Sequence[str], text_columns: int, lines: Sequence[Sequence[str]]) -> None:
    """One table on the terminal: the first `text_columns` columns left-aligned, a section per group (column 0)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for k, header in enumerate(headers):
        table.add_column(header, justify="left" if k < text_columns else "right")
    last = None
    for cells in lines:
        if last is not None and cells[0] != last:
            table.add_section()
        last = cells[0]
        table.add_row(*cells)
    Console(width=220).print(table)


def print_table(rows: Sequence[Mapping[str, Any]], title: str) -> None:
    _print_rich(title, [c[0] for c in COLUMNS], sum(c[2] is None for c in COLUMNS),
                [[str(r[k]) if kind is None else _fmt(r[k], kind) for _h, k, kind in COLUMNS] for r in rows])


def print_lead_table(rows: Sequence[Mapping[str, Any]]) -> None:
    _print_rich("BudgetPolicy's lead over each row, points [95 % interval over runs, paired bootstrap]; an interval "
                "holding 0 is not a lead these runs can tell from chance",
                ["group", "over", *(h for h, _k in LEAD_COLUMNS)], 2, lead_table(rows))


def plot(results: Mapping[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = list(results["groups"])
    fig, axes = plt.subplots(1, len(groups) + 1, figsize=(6 * (len(groups) + 1), 5), dpi=100)
    for ax, g in zip(axes, groups, strict=False):
        points: dict[tuple[float, float, float], list[str]] = {}  # rows with identical results share one label
        for r in results["groups"][g]["rows"]:
            if r["peak_ratio"] is not None and r["retention_old"] is not None:
                key = (round(r["peak_ratio"], 4), round(r["retention_old"], 4), round(r["in_context_old"] or 0, 4))
                points.setdefault(key, []).append(r["policy"])
        for (x, y, y_ctx), names in points.items():
            dot = ax.scatter(x, y, s=40)
            ax.scatter(x, y_ctx, s=40, facecolors="none", edgecolors=dot.get_facecolor())
            ax.plot([x, x], [y_ctx, y], color=dot.get_facecolor()[0], linewidth=0.8)
            ax.annotate(" = ".join(names), (x, y), fontsize=7, xytext=(4, 3), textcoords="offset points")
        ax.set_xlabel("peak view / peak raw tokens (lower is smaller)")
        ax.set_ylabel("values last seen 10+ rounds ago: present (dot), in context (ring)")
        ax.set_title(f"{g}: smaller and remembers more = up-left", fontsize=10)
        ax.grid(alpha=0.3)
    # footprint of one long run under every policy
    ax = axes[-1]
    g0 = groups[0]
    curves = results["groups"][g0].get("example_curves") or {}
    for spec, pts in curves.items():
        ax.plot([p[0] for p in pts], [p[1] for p in pts], label=spec, linewidth=1.4)
    ax.axhline(results["groups"][g0]["budget"], color="grey", linestyle=":", linewidth=1)
    example = str(results["groups"][g0].get("example")).rsplit("/", 1)[-1]
    ax.set_title(f"{g0}: view tokens per round, longest run ({example})", fontsize=9)
    ax.set_xlabel("round")
    ax.set_ylabel("view tokens")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--swe", type=Path, default=DATA / "swe_deepseek_public.jsonl")
    ap.add_argument("--tau", type=Path, default=DATA / "taubench_airline.jsonl")
    ap.add_argument("--swe-min-rounds", type=int, default=80)
    ap.add_argument("--swe-max-rounds", type=int, default=None,
                    help="only SWE runs with at most this many rounds (--swe-min-rounds 40 --swe-max-rounds 79: "
                         "the 25 held-out runs the defaults were not tuned on)")
    ap.add_argument("--tau-count", type=int, default=20, help="the N longest tau-bench runs")
    ap.add_argument("--swe-budget", default="6000,8000", help="comma-separated budgets, one SWE group each")
    ap.add_argument("--tau-budget", type=int, default=4000,
                    help="tau-bench runs mostly fit in 8000 tokens; a smaller budget makes the policies act")
    ap.add_argument("--specs", default=",".join(DEFAULT_SPECS), help="comma-separated NAME[@THINKER] specs")
    ap.add_argument("--local-subset", type=int, default=0,
                    help="also run budget@local and thinker@local (and their extractive twins) on the N shortest "
                         "selected SWE runs")
    ap.add_argument("--local-thinker", default="local", help="thinker spec for --local-subset")
    ap.add_argument("--subset-only", action="store_true", help="with --local-subset: run only that group")
    ap.add_argument("--quick", action="store_true", help="3 SWE + 5 tau runs")
    ap.add_argument("--swe-limit", type=int, default=None, help="at most N SWE runs (the longest first)")
    ap.add_argument("--groups", default="swe,tau", help="which datasets to run: swe, tau or both")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = ap.parse_args(argv)

    from agentmem.policies import REGISTRY

    specs = []
    for spec in [s.strip() for s in args.specs.split(",") if s.strip()]:
        name, _ = parse_spec(spec)
        if name not in EXTERNAL and SPEC_POLICIES.get(name, (name,))[0] not in REGISTRY:
            print(f"note: policy {name!r} is not registered here; skipping {spec!r}", file=sys.stderr)
            continue
        specs.append(spec)
    limit = 3 if args.quick else args.swe_limit
    wanted = {g.strip() for g in args.groups.split(",") if g.strip()}
    swe_budgets = [int(b) for b in str(args.swe_budget).split(",") if b.strip()]
    groups_def = []
    swe_runs = select(args.swe, min_rounds=args.swe_min_rounds, limit=limit) if "swe" in wanted else []
    if args.swe_max_rounds is not None:
        swe_runs = [t for t in swe_runs if t.rounds <= args.swe_max_rounds]
    if "swe" in wanted:
        groups_def += [(f"swe@{b}", swe_runs, b) for b in swe_budgets]
    if "tau" in wanted:
        groups_def.append((f"tau@{args.tau_budget}", select(args.tau, longest=5 if args.quick else args.tau_count),
                           args.tau_budget))
    local_specs: list[str] = []
    if args.local_subset and swe_runs:
        subset = sorted(swe_runs, key=lambda t: (t.rounds, t.id))[: args.local_subset]
        local_specs = [s for s in (f"budget@{args.local_thinker}", f"thinker@{args.local_thinker}")
                       if parse_spec(s)[0] in REGISTRY]
        groups_def.append((f"swe-subset{len(subset)}@{swe_budgets[0]}", subset, swe_budgets[0]))
        if args.subset_only:
            groups_def = groups_def[-1:]
    results: dict[str, Any] = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "summarizer": "no network model anywhere: langmem gets ExtractiveChatModel (agentmem's extractive fold as a "
                      f"local LangChain chat model; summary {LANGMEM_SUMMARY_SHARE:.0%} of the budget, at most "
                      "BudgetPolicy's memory allotment; max_tokens the rest); the agentmem policies use the same "
                      "extractive fold",
        "groups": {},
    }
    thinkers: dict[str, Any] = {}
    all_rows = []
    carried_cache: dict[str, Any] = {}
    for group, trajs, budget in groups_def:
        group_specs = specs if not group.startswith("swe-subset") else \
            [s for s in ("budget", "thinker") if s in specs] + local_specs
        for t in trajs:
            if t.id not in carried_cache:
                carried_cache[t.id] = carried_values_by_round(t.messages)
        carried = {t.id: carried_cache[t.id] for t in trajs}
        example = max(trajs, key=lambda t: (t.rounds, t.id)).id if trajs else None
        g: dict[str, Any] = {"budget": budget, "trajectories": [t.id for t in trajs],
                             "rounds": sum(t.rounds for t in trajs), "rows": [], "per_spec": {}, "example": example,
                             "example_curves": {}}
        for spec in group_specs:
            t0 = time.perf_counter()
            print(f"[{group}] {spec}: {len(trajs)} runs …", file=sys.stderr, flush=True)
            try:
                rounds = run_spec(spec, trajs, budget, carried, thinkers)
            except Exception as exc:  # a thinker that cannot load, a missing optional library …
                print(f"note: {spec} failed on {group}: {type(exc).__name__}: {exc}; skipped", file=sys.stderr)
                continue
            summary = summarize_rounds(rounds)
            summary["seconds"] = round(time.perf_counter() - t0, 2)
            row = row_of(group, spec, summary)
            g["rows"].append(row)
            all_rows.append(row)
            g["per_spec"][spec] = summary
            g["example_curves"][spec] = [(r["round"], r["view_tokens"]) for r in rounds
                                         if r["trajectory"] == example]
            if spec == "noop":
                g["example_curves"]["raw"] = [(r["round"], r["raw_tokens"]) for r in rounds
                                              if r["trajectory"] == example]
            print(f"   done in {summary['seconds']:.1f}s", file=sys.stderr, flush=True)
        add_intervals(g["rows"], g["per_spec"])
        results["groups"][group] = g
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "benchmark.json").write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n",
                                             encoding="utf-8")
    (args.out / "benchmark.md").write_text(
        markdown_table(all_rows) + "\n\nBudgetPolicy's lead over each row, in points, with its 95 % interval over runs "
        "(paired bootstrap, 2,000 resamples):\n\n" + lead_markdown(all_rows) + "\n", encoding="utf-8")
    plot(results, args.out / "benchmark.png")
    m = results["machine"]
    print_table(all_rows, f"agentmem benchmark — {results['date'][:10]}, {m['cpus']} CPUs ({m['cpu']}), "
                          f"{m['memory_gib']} GiB, GPU: {m['gpu'] or 'none'}")
    print_lead_table(all_rows)
    print(f"wrote {args.out / 'benchmark.json'}, {args.out / 'benchmark.md'}, {args.out / 'benchmark.png'}")
    return results


if __name__ == "__main__":
    main()
