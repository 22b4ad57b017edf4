"""evict: stubs keep role and pairing and say how to get the content back."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from agentmem.messages import parse_messages
from agentmem.primitives import EvictConfig, evict, fold
from agentmem.view import STUB_HEADER, EventError, StubItem
from histories import COUNTER, snapshot, view_of

BIG = "line of output with token tok_8f3a2b9c\n" * 300
RAW = [
    {"role": "system", "content": "sys"},
    {"role": "user", "content": "task"},
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "name": "bash", "arguments": '{"cmd": "cat big.log"}'},
        {"id": "c2", "name": "read_file", "arguments": '{"path": "/a"}'}]},
    {"role": "tool", "tool_call_id": "c1", "content": BIG},
    {"role": "tool", "tool_call_id": "c2", "content": "small"},
    {"role": "assistant", "content": "next"},
]


@pytest.fixture
def view():
    return view_of(parse_messages(RAW))


def test_stub_replaces_content_and_keeps_pairing(view):
    big = view.items[3]
    new, ev = evict(view, ids=[big.key], counter=COUNTER)
    stub = new.get(big.key)
    assert isinstance(stub, StubItem) and stub.pos == big.pos and stub.message == big.message
    rendered = stub.render()
    assert rendered["role"] == "tool" and rendered["tool_call_id"] == "c1"
    assert rendered["content"].startswith(f"{STUB_HEADER} bash output id={big.key}, {big.tokens} tokens")
    assert f'recall_memory(ids=["{big.key}"])' in rendered["content"]
    preview = json.loads(rendered["content"].split(" preview: ", 1)[1])
    assert preview == " ".join(BIG.split())[:100]
    assert new.tokens < view.tokens - 1000 and new.tokens == COUNTER.messages(new.render())
    assert ev.kind == "evict" and ev.covers == (big.key,) and ev.meta["evicted_tokens"] == big.tokens
    assert ev.meta["stubs"] == {big.key: rendered["content"]}
    new.validate(allow_open_tail=False)


def test_preview_length_is_configurable_and_ids_deduplicated(view):
    keys = [view.items[3].key, view.items[4].key, view.items[3].key]
    new, ev = evict(view, ids=keys, counter=COUNTER, config=EvictConfig(preview_chars=0))
    assert ev.covers == (keys[0], keys[1])
    assert new.get(keys[0]).text.endswith('preview: ""')
    assert "read_file output" in new.get(keys[1]).text


def test_evicting_an_assistant_turn_keeps_its_calls(view):
    a = view.items[2]
    new, _ = evict(view, ids=[a.key], counter=COUNTER)
    r = new.get(a.key).render()
    assert r["tool_calls"] == a.message.to_dict()["tool_calls"] and "assistant message" in r["content"]
    new.validate(allow_open_tail=False)


def test_evict_is_pure_and_rejects_bad_ids(view):
    before = snapshot(view)
    new, _ = evict(view, ids=[view.items[3].key], counter=COUNTER)
    assert snapshot(view) == before
    folded, _ = fold(view, span=[view.items[5].key], counter=COUNTER)
    for v, ids in [(view, []), (view, ["nope"]), (view, [view.items[0].key]), (new, [view.items[3].key]),
                   (folded, ["blk-1"])]:
        snap = snapshot(v)
        with pytest.raises(EventError):
            evict(v, ids=ids, counter=COUNTER)
        assert snapshot(v) == snap


def test_evict_config_is_strict():
    with pytest.raises(ValidationError):
        EvictConfig(preview_chars=-1)
    with pytest.raises(ValidationError):
        EvictConfig(keep=True)
