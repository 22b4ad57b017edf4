"""BudgetPolicy: nothing under budget; evict oversized old outputs, then fold the oldest units to the low mark."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from agentmem.actions import EvictAction, FoldAction
from agentmem.messages import parse_messages
from agentmem.policies import BudgetConfig, BudgetPolicy, make_policy
from agentmem.policies.base import PolicyContext, pinned_head, recent_start
from agentmem.primitives import evict, fold
from agentmem.testing import synthetic_history
from agentmem.view import BlockItem, View
from histories import COUNTER, histories, view_of

CTX = PolicyContext(task="t", model="gpt-4o")


def _view(rounds=30, output_chars=600, big_every=0, big_chars=12000):
    raw = synthetic_history(rounds, output_chars=output_chars)
    if big_every:
        tools = [i for i, m in enumerate(raw) if m["role"] == "tool"]
        for i in tools[::big_every]:
            raw[i] = {**raw[i], "content": raw[i]["content"] + " big" * (big_chars // 4)}
    return view_of(parse_messages(raw))


def _apply(view: View, actions) -> View:
    for a in actions:
        if isinstance(a, EvictAction):
            view, _ = evict(view, ids=a.ids, counter=COUNTER)
        elif isinstance(a, FoldAction):
            view, _ = fold(view, span=a.span, counter=COUNTER, block_tokens=a.block_tokens)
        else:  # pragma: no cover
            raise AssertionError(a)
    return view


def _protected(view: View, keep: int) -> set[str]:
    """Keys BudgetPolicy must never touch: system, first user message, the newest `keep` assistant turns on."""
    keys = set(view.keys()[:pinned_head(view)])
    assistants = [s for s, _ in view.units() if getattr(view.items[s], "message", None) is not None
                  and view.items[s].message.role == "assistant"]
    if assistants:
        start = assistants[-keep] if len(assistants) >= keep else assistants[0]
        keys |= set(view.keys()[start:])
    return keys


def test_no_action_under_budget():
    view = _view(rounds=5)
    assert view.tokens < 8000
    assert BudgetPolicy(budget_tokens=8000).decide(view, CTX) == []
    assert BudgetPolicy(budget_tokens=view.tokens).decide(view, CTX) == []  # at the mark is not over it


def test_evicts_oversized_old_tool_outputs_first():
    view = _view(rounds=20, big_every=4)
    policy = BudgetPolicy(budget_tokens=6000, evict_tool_tokens=1500, keep_recent_rounds=4)
    actions = policy.decide(view, CTX)
    assert actions and isinstance(actions[0], EvictAction)
    big = {it.key for it in view.items if getattr(it, "message", None) is not None
           and it.message.role == "tool" and it.tokens > 1500}
    protected = _protected(view, 1)  # only the newest round's outputs are never evicted
    assert set(actions[0].ids) == big - protected and set(actions[0].ids)
    after = _apply(view, actions)
    after.validate(allow_open_tail=False)
    assert after.tokens <= 6000


def test_folds_oldest_units_into_a_block_sized_by_the_memory_allotment():
    view = _view(rounds=40)
    cfg = BudgetConfig(budget_tokens=5000, keep_recent_rounds=3, memory_ratio=0.4, keep_ratio=0.1,
                       working_ratio=0)
    actions = BudgetPolicy(cfg).decide(view, CTX)
    assert [type(a) for a in actions] == [FoldAction]
    span = actions[0].span
    head = pinned_head(view)
    assert span[0] == view.items[head].key  # the oldest foldable unit comes first
    assert list(span) == view.keys()[head:head + len(span)]  # one contiguous chunk
    space = 5000 - sum(it.tokens for it in view.items[:head])
    assert 32 <= actions[0].block_tokens <= int(space * 0.4)  # the memory's allotment, not a fixed block
    after = _apply(view, actions)
    after.validate(allow_open_tail=False)
    assert after.tokens <= 5000
    raw_after = sum(it.tokens for it in after.items[head + 1:])
    assert raw_after <= max(int(space * 0.1), sum(it.tokens for it in view.items[recent_start(view, 3):]))
    assert BudgetPolicy(cfg).decide(after, CTX) == []  # nothing more to do until the budget is crossed again


def test_blocks_stay_in_place_until_the_allotment_is_full_then_merge():
    cfg = BudgetConfig(budget_tokens=5000, keep_recent_rounds=3, memory_ratio=0.4, keep_ratio=0.1,
                       working_ratio=0)
    policy = BudgetPolicy(cfg)
    msgs = parse_messages(synthetic_history(160, output_chars=600))
    view = View()
    folds = []  # (span holds a block?, tokens the leading blocks held before, room the allotment had)
    for m in msgs:
        view = view_of([m], view=view)
        if not view.unit_complete(*view.units()[-1]):
            continue
        actions = policy.decide(view, CTX)
        for a in actions:
            if isinstance(a, FoldAction):
                head = pinned_head(view)
                allotment = int((5000 - sum(it.tokens for it in view.items[:head])) * 0.4)
                leading, newest = 0, None
                for it in view.items[head:]:
                    if not isinstance(it, BlockItem):
                        break
                    leading, newest = leading + it.tokens, it.tokens
                folds.append((any(k.startswith("blk-") for k in a.span), leading, allotment - leading, newest))
                if not folds[-1][0]:
                    assert a.block_tokens <= allotment - leading
        view = _apply(view, actions)
        view.validate(allow_open_tail=False)
        assert view.tokens <= 5000
    assert len(folds) >= 4 and any(f[0] for f in folds) and any(not f[0] for f in folds)
    for merged, leading, room, newest in folds:  # merge only when full, or to re-grow a small newest block
        small = newest is not None and newest < cfg.regrow_block_ratio * (room + leading)
        assert merged == (room < cfg.min_new_block_ratio * (room + leading) or small), folds
    assert view.keys()[:2] == [msgs[0].id, msgs[1].id]


@given(data=st.data())
@settings(max_examples=40, deadline=None)
def test_never_touches_system_task_or_recent_turns(data):
    raw = data.draw(histories(max_turns=14, open_tail=False))
    view = view_of(parse_messages(raw))
    keep = data.draw(st.integers(1, 4))
    budget = data.draw(st.integers(256, 2000))
    cfg = BudgetConfig(budget_tokens=budget, keep_recent_rounds=keep, evict_tool_tokens=64,
                       block_tokens=min(100, int(budget * 0.3)))
    actions = BudgetPolicy(cfg).decide(view, CTX)
    # folds never reach into the newest turn, nor into the newest `keep` turns while the ones before the newest fit
    # in recent_share of the space after the pinned task; evictions of oversized outputs spare only the newest turn
    space = budget - sum(it.tokens for it in view.items[:pinned_head(view)])
    older_recent = _protected(view, keep) - _protected(view, 1)
    fits = sum(view.get(k).tokens for k in older_recent) <= space * cfg.recent_share
    for a in actions:
        touched = set(a.ids if isinstance(a, EvictAction) else a.span)
        assert not touched & _protected(view, 1)
        if isinstance(a, FoldAction) and fits:
            assert not touched & _protected(view, keep)
    if view.tokens <= budget:
        assert actions == []
    _apply(view, actions).validate(allow_open_tail=False)


def test_config_is_strict_and_checked():
    with pytest.raises(ValidationError):
        BudgetConfig(budget_tokens=8000, surprise=1)
    with pytest.raises(ValidationError):
        BudgetPolicy(budget_tokens=8000, unknown_field=True)
    with pytest.raises(ValidationError, match="block_tokens"):
        BudgetConfig(budget_tokens=1000, block_tokens=700)
    with pytest.raises(ValidationError):
        BudgetConfig(budget_tokens=10)
    with pytest.raises(ValidationError):
        make_policy("budget", budget_tokens=8000, low_watermark=0.5)
    with pytest.raises(ValueError, match="unknown policy"):
        make_policy("nope")
    p = make_policy("budget", budget_tokens=3000)
    assert isinstance(p, BudgetPolicy) and p.config.budget_tokens == 3000
    assert make_policy("noop", budget_tokens=3000).name == "noop"


def _recall_tail(rounds: int, recalls: int, answer_chars: int = 1200) -> View:
    """A history whose newest `recalls` assistant turns are recall_memory calls with their answers."""
    raw = synthetic_history(rounds, output_chars=600)
    for n in range(recalls):
        call_id = f"rc{n}"
        raw.append({"role": "assistant", "content": f"recalling page {n + 1}",
                    "tool_calls": [{"id": call_id, "type": "function",
                                    "function": {"name": "recall_memory",
                                                 "arguments": f'{{"query": "list_items page_index {n}"}}'}}]})
        raw.append({"role": "tool", "tool_call_id": call_id,
                    "content": f"[agentmem: recalled page {n}] " + "item value " * (answer_chars // 11)})
    return view_of(parse_messages(raw))


def test_recall_answers_the_agent_is_still_reading_are_not_folded():
    """A run of recall rounds (the agent pages through answers before it acts) stays raw, so the answers it asked
    for first are still there when it has all of them; the older rounds are folded instead."""
    view = _recall_tail(rounds=40, recalls=4)
    recall_keys = set(view.keys()[-8:])
    policy = BudgetPolicy(budget_tokens=6000, working_ratio=0)  # the guard alone, without a raw working share
    actions = [a for a in policy.decide(view, CTX) if isinstance(a, FoldAction)]
    assert actions, "over budget: the old rounds are folded"
    assert not recall_keys & set(actions[0].span)
    after = _apply(view, actions)
    after.validate(allow_open_tail=False)
    assert recall_keys <= set(after.keys()) and after.tokens <= 6000
    # without the guard the oldest recall answers are folded with the old rounds (keep_recent_rounds only)
    plain = BudgetPolicy(budget_tokens=6000, keep_recall_ratio=0, working_ratio=0)
    span = set(next(a for a in plain.decide(view, CTX) if isinstance(a, FoldAction)).span)
    assert recall_keys & span


def test_a_recall_run_larger_than_its_share_is_folded_from_its_oldest_answers():
    view = _recall_tail(rounds=10, recalls=12, answer_chars=2400)
    policy = BudgetPolicy(budget_tokens=6000, working_ratio=0)
    folds = [a for a in policy.decide(view, CTX) if isinstance(a, FoldAction)]
    assert folds
    span = set(folds[0].span)
    first_recall = len(view.keys()) - 24
    assert set(view.keys()[first_recall:first_recall + 2]) <= span  # the oldest recall round goes
    assert not set(view.keys()[-4:]) & span  # the newest two never


def test_a_fold_leaves_the_working_share_raw_while_the_agent_recalls():
    """working_ratio: while a recall round is raw in the view, memory holds at most 1 - working_ratio of the space
    and a fold leaves half of it raw; an agent that does not recall keeps the memory_ratio / keep_ratio sizing."""
    plain = _view(rounds=60)
    recalling = _recall_tail(rounds=60, recalls=1, answer_chars=300)
    for view, working, applies in ((plain, 0.0, False), (plain, 0.7, False), (recalling, 0.7, True)):
        head = pinned_head(view)
        space = 6000 - sum(it.tokens for it in view.items[:head])
        policy = BudgetPolicy(budget_tokens=6000, working_ratio=working)
        actions = policy.decide(view, CTX)
        after = _apply(view, actions)
        after.validate(allow_open_tail=False)
        memory = sum(it.tokens for it in after.items if isinstance(it, BlockItem))
        raw = after.tokens - memory - sum(it.tokens for it in after.items[:head])
        if applies:
            assert memory <= int(space * (1 - working)) and raw >= int(space * working / 2) - 400
        else:
            assert raw < int(space * 0.35) - 400  # memory_ratio / keep_ratio rule: little stays raw


def test_memory_gives_way_to_a_huge_newest_round_down_to_its_floor():
    """A newest assistant turn larger than the space memory leaves: the newest blocks are merged down to what the
    budget needs (never below min_memory_ratio of the allotment), so the view fits instead of a tiny new block
    and an over-budget request."""
    cfg = BudgetConfig(budget_tokens=5000, working_ratio=0)
    policy = BudgetPolicy(cfg)
    msgs = parse_messages(synthetic_history(120, output_chars=600))
    view = View()
    for m in msgs:
        view = view_of([m], view=view)
        if view.unit_complete(*view.units()[-1]):
            view = _apply(view, policy.decide(view, CTX))
    head = pinned_head(view)
    memory = sum(it.tokens for it in view.items[head:] if isinstance(it, BlockItem))
    space = 5000 - sum(it.tokens for it in view.items[:head])
    assert memory > space * cfg.memory_ratio * 0.6  # the allotment is (nearly) full
    huge = {"role": "assistant", "content": "I will write the whole module now. " + "x = 1\n" * 450}
    view = view_of(parse_messages([huge]), view=view)
    assert view.tokens > 5000
    actions = policy.decide(view, CTX)
    after = _apply(view, actions)
    after.validate(allow_open_tail=True)
    assert after.tokens <= 5000
    left = sum(it.tokens for it in after.items[head:] if isinstance(it, BlockItem))
    assert int(space * cfg.memory_ratio * cfg.min_memory_ratio) <= left < memory


@pytest.mark.parametrize("regrow", [0.1, 0.0])
def test_a_small_newest_block_is_merged_into_the_next_fold(regrow):
    """A block left small (squeezed by a large newest round, or folded from a short span) is merged into the next
    fold, which selects again from the messages it stands for with the room that fold has; with
    regrow_block_ratio 0 it stays and the next fold makes a block of its own after it."""
    cfg = BudgetConfig(budget_tokens=5000, working_ratio=0, regrow_block_ratio=regrow)
    view = view_of(parse_messages(synthetic_history(40, output_chars=600)))
    units = view.units()
    view = _apply(view, [FoldAction(span=tuple(view.keys()[units[2][0]:units[4][1]]), block_tokens=40)])
    small = view.items[pinned_head(view)]
    assert isinstance(small, BlockItem) and small.tokens < 0.1 * 0.8 * 5000 and view.tokens > 5000
    folds = [a for a in BudgetPolicy(cfg).decide(view, CTX) if isinstance(a, FoldAction)]
    assert len(folds) == 1 and (folds[0].span[0] == small.key) == (regrow > 0)
    after = _apply(view, folds)
    after.validate(allow_open_tail=False)
    assert after.tokens <= 5000
    if regrow:
        assert small.key not in after.keys() and after.items[pinned_head(after)].tokens > small.tokens
