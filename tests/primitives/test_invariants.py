"""THE invariant test: every primitive in REGISTRY, on random histories with random valid arguments.

For every produced view: it passes the validator (strict when no tool call is pending), the input view is unchanged
(purity), token accounting matches a recount of the rendered view, every original message is accounted for exactly
once, and replaying the recorded events over the same messages gives the identical view (same log → same view).
Invalid arguments (split / non-contiguous spans, unknown ids) raise EventError and change nothing.

A primitive added to REGISTRY without a generator here fails loudly, and each primitive must actually be applied.
"""

from __future__ import annotations

import inspect
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from agentmem.messages import parse_messages
from agentmem.primitives import REGISTRY, EvictConfig, FoldConfig, RecallConfig, SummarizeConfig
from agentmem.primitives.summarize import EmptyThinkingError
from agentmem.view import BlockItem, Event, EventError, MessageItem, RecalledItem, View, build_view
from histories import COUNTER, covered_ids, histories, is_closed, snapshot, view_of

NAMES = sorted(REGISTRY)
APPLIED: Counter[str] = Counter()  # successful applications per primitive
REJECTED: Counter[str] = Counter()  # invalid arguments correctly rejected per primitive
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --- argument generators ---------------------------------------------------------------------------------------
def _complete_units(view: View) -> list[tuple[int, int]]:
    """Units that may be folded: not the leading system message, no assistant turn still waiting for results."""
    out = []
    for s, e in view.units():
        it = view.items[s]
        if it.key == view.system_id:
            continue
        msg = getattr(it, "message", None)
        if msg is not None and msg.role == "assistant" and msg.tool_calls:
            answered = {view.items[k].message.tool_call_id for k in range(s + 1, e)}
            if answered != set(msg.tool_call_ids):
                continue
        out.append((s, e))
    return out


def _draw_span(data, view: View) -> list[str] | None:
    units = _complete_units(view)
    runs: list[list[tuple[int, int]]] = []  # maximal runs of adjacent foldable units
    for u in units:
        if runs and runs[-1][-1][1] == u[0]:
            runs[-1].append(u)
        else:
            runs.append([u])
    if not runs:
        return None
    run = data.draw(st.sampled_from(runs))
    a = data.draw(st.integers(0, len(run) - 1))
    b = data.draw(st.integers(a, len(run) - 1))
    keys = [view.items[k].key for s, e in run[a:b + 1] for k in range(s, e)]
    return data.draw(st.permutations(keys))  # order of the keys given must not matter


def _config(name: str, data):
    cls = REGISTRY[name][0]
    if cls is FoldConfig:
        return FoldConfig(max_block_tokens=data.draw(st.integers(32, 600)), max_values=data.draw(st.integers(0, 80)))
    if cls is SummarizeConfig:
        return SummarizeConfig(max_block_tokens=data.draw(st.integers(150, 500)),
                               guard=data.draw(st.sampled_from(["drop", "flag", "off"])),
                               merge_lines=data.draw(st.booleans()), lines_tokens=data.draw(st.integers(0, 100)))
    if cls is EvictConfig:
        return EvictConfig(preview_chars=data.draw(st.integers(0, 200)))
    if cls is RecallConfig:
        return RecallConfig(budget_tokens=data.draw(st.integers(100, 900)), max_messages=data.draw(st.integers(1, 6)))
    return cls()


def _call(name: str, view: View, data, **kwargs):
    cfg, fn = REGISTRY[name]
    if "config" in inspect.signature(fn).parameters:
        kwargs["config"] = _config(name, data)
    return fn(view, counter=COUNTER, **kwargs)


def _thinking(view: View, span: list[str], data) -> str:
    from agentmem.primitives._common import item_text

    source = "\n".join(item_text(view.get(k)) for k in span)
    words = [w for w in source.split() if w.isascii()][:12]
    lines = ["Progress so far: the agent read files and checked amounts."]
    if words:
        lines.append("Seen: " + " ".join(data.draw(st.lists(st.sampled_from(words), max_size=6))))
    if data.draw(st.booleans()):
        lines.append("Invented ticket ZZQ987654 for user_999999")  # the guard drops (or flags) this line
    return "\n".join(lines)


def _args(name: str, data, view: View, ingested: list) -> dict | None:
    """Random valid keyword arguments for `name` on `view`, or None when the view offers none."""
    if name in ("fold", "summarize"):
        span = _draw_span(data, view)
        if span is None:
            return None
        if name == "summarize":
            return {"span": span, "thinking": _thinking(view, span, data)}
        return {"span": span}
    if name == "evict":
        ids = [it.key for it in view.items if isinstance(it, MessageItem) and it.key != view.system_id]
        if not ids:
            return None
        chosen = data.draw(st.lists(st.sampled_from(ids), min_size=1, max_size=4))  # duplicates allowed
        return {"ids": chosen}
    if name == "recall":
        found = data.draw(st.lists(st.sampled_from(ingested), min_size=1, max_size=4, unique_by=lambda m: m.id))
        return {"found": found, "query": data.draw(st.one_of(st.none(), st.sampled_from(["inv_0042", "amount"])))}
    if name == "unrecall":
        keys = [it.key for it in view.items if isinstance(it, RecalledItem)]
        if not keys:
            return None
        return {"keys": data.draw(st.lists(st.sampled_from(keys), min_size=1, max_size=len(keys), unique=True))}
    raise AssertionError(f"primitive {name!r} is in REGISTRY but this test has no argument generator for it")


def _bad_args(name: str, data, view: View, open_tail: bool) -> list[dict]:
    """Arguments that must raise EventError on `view`."""
    out: list[dict] = []
    if name in ("fold", "summarize"):
        extra = {"thinking": "notes"} if name == "summarize" else {}
        out.append({"span": ["no-such-id"], **extra})
        units = view.units()
        for s, e in units:
            if e - s >= 2:  # an assistant turn with results: take the call without (all) its results
                cut = data.draw(st.integers(s + 1, e - 1))
                out.append({"span": [view.items[k].key for k in range(s, cut)], **extra})
                out.append({"span": [view.items[k].key for k in range(cut, e)], **extra})
                break
        foldable = _complete_units(view)
        gaps = [(u, w) for u, w in zip(foldable, foldable[2:], strict=False)]
        if gaps:  # two units with another one between them
            (s1, e1), (s2, e2) = data.draw(st.sampled_from(gaps))
            out.append({"span": [view.items[s1].key, view.items[s2].key], **extra})
        if view.system_id is not None:
            out.append({"span": [view.system_id], **extra})
    elif name == "evict":
        out.append({"ids": ["no-such-id"]})
        not_original = [it.key for it in view.items if not isinstance(it, MessageItem)]
        if not_original:
            out.append({"ids": [data.draw(st.sampled_from(not_original))]})
        if view.system_id is not None:
            out.append({"ids": [view.system_id]})
    elif name == "unrecall":
        out.append({"keys": ["rec-999"]})
        out.append({"keys": [view.items[-1].key]} if not isinstance(view.items[-1], RecalledItem) else {"keys": []})
    elif name == "recall" and open_tail:
        out.append({"found": [view.items[-1].message] if hasattr(view.items[-1], "message") else []})
    return [a for a in out if all(a.values())]


# --- checks ----------------------------------------------------------------------------------------------------
def _check_view(new: View, ingested: list, strict: bool) -> None:
    new.validate(allow_open_tail=not strict)
    assert new.tokens == COUNTER.messages(new.render()), "view.tokens drifted from a recount of the rendered view"
    assert covered_ids(new) == [m.id for m in ingested], "an original message was lost or duplicated in the view"
    for it in new.items:
        if isinstance(it, (BlockItem, RecalledItem)):
            assert it.text.startswith("[agentmem"), it.text[:80]


def _step(name: str, data, view: View, ingested: list, events: list[Event]) -> View:
    strict = is_closed(ingested)
    args = _args(name, data, view, ingested)
    if name == "unrecall" and args is None and strict:  # needs something recalled first
        view = _step("recall", data, view, ingested, events)
        args = _args(name, data, view, ingested)
    before = snapshot(view)
    for bad in _bad_args(name, data, view, open_tail=not strict):
        with pytest.raises(EventError):
            _call(name, view, data, **bad)
        assert snapshot(view) == before, f"{name} changed its input view while failing"
        REJECTED[name] += 1
    if args is None:
        return view
    if name == "recall" and not strict:  # nothing may come between a tool call and its results
        with pytest.raises(EventError):
            _call(name, view, data, **args)
        assert snapshot(view) == before
        REJECTED[name] += 1
        return view
    try:
        new, ev = _call(name, view, data, **args)
    except EmptyThinkingError:
        assert name == "summarize"
        assert snapshot(view) == before
        return view
    assert snapshot(view) == before, f"{name} mutated the view it was given"
    assert ev is not None and isinstance(ev, Event)
    assert ev.seq == view.next_seq and new.next_seq == ev.seq + 1
    assert ev.after_message == view.message_count == new.message_count
    assert ev.kind == name or (name == "fold" and ev.kind == "fold")
    assert new is not view and new.items is not view.items
    _check_view(new, ingested, strict)
    if name in ("fold", "summarize"):
        assert new.get(f"blk-{ev.seq}") is not None
        assert len(new.items) < len(view.items) or len(args["span"]) == 1
    elif name == "evict":
        assert len(new.items) == len(view.items)
        assert all(not isinstance(new.get(k), MessageItem) for k in args["ids"])
    elif name == "recall":
        assert new.items[-1].key == f"rec-{ev.seq}" and len(new.items) == len(view.items) + 1
    elif name == "unrecall":
        assert all(new.get(k) is None for k in args["keys"])
    events.append(ev)
    APPLIED[name] += 1
    return new


def _scenario(name: str, data) -> None:
    raw = data.draw(histories())
    msgs = parse_messages(raw)
    cut = data.draw(st.integers(2, len(msgs)))
    view = View()
    events: list[Event] = []
    ingested: list = []
    for phase in (msgs[:cut], msgs[cut:]):
        if not phase and ingested:
            continue
        view = view_of(phase, view=view)
        ingested = ingested + list(phase)
        view.validate(allow_open_tail=not is_closed(ingested))  # new messages fit what earlier events left
        for kind in data.draw(st.lists(st.sampled_from(NAMES), max_size=3)) + [name]:
            view = _step(kind, data, view, ingested, events)
    # same log → same view: replay from the messages and the (serialized) events
    stored_events = [Event.model_validate_json(e.model_dump_json()) for e in events]
    pairs = [(m, COUNTER.message(m)) for m in msgs]
    replay = build_view(pairs, stored_events, COUNTER)
    assert replay.render() == view.render()
    assert replay.keys() == view.keys()
    assert (replay.tokens, replay.next_seq, replay.message_count, replay.system_id) == \
        (view.tokens, view.next_seq, view.message_count, view.system_id)
    # incremental replay (a resumed session continuing from a base view) gives the same view too
    base = build_view(pairs[:cut], [e for e in stored_events if e.after_message <= cut], COUNTER)
    rest = build_view(pairs[cut:], [e for e in stored_events if e.after_message > cut], COUNTER, base=base)
    assert rest.render() == view.render()


@pytest.mark.parametrize("name", NAMES)
def test_primitive_keeps_every_invariant(name):
    applied_before, rejected_before = APPLIED[name], REJECTED[name]

    @SETTINGS
    @given(data=st.data())
    def run(data):
        _scenario(name, data)

    run()
    assert APPLIED[name] - applied_before >= 10, f"{name} was applied only {APPLIED[name] - applied_before} times"
    assert REJECTED[name] - rejected_before >= 5, f"{name} rejected invalid arguments only " \
                                                  f"{REJECTED[name] - rejected_before} times"


def test_every_registered_primitive_is_covered():
    assert set(REGISTRY) == {"fold", "summarize", "evict", "recall", "unrecall"}, (
        "REGISTRY changed: add an argument generator for the new primitive in _args/_bad_args")
    for name, (cfg, fn) in REGISTRY.items():
        assert callable(fn), name
        with pytest.raises(ValidationError):
            cfg(no_such_field=1)  # extra="forbid" on every primitive config
