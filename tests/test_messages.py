"""Message parsing (OpenAI, flat, LangChain, litellm), bad input, rounds and validate_history."""

from __future__ import annotations

import json
import os

import pytest

from agentmem.messages import (
    HistoryError,
    InvalidMessageError,
    Message,
    ToolCall,
    group_rounds,
    message_text,
    parse_message,
    parse_messages,
    response_message,
    to_langchain,
    validate_history,
)

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


def _call(cid="call_1", name="read_file", args='{"path": "/a.txt"}'):
    return {"id": cid, "type": "function", "function": {"name": name, "arguments": args}}


def _history():
    return [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "task"},
        {"role": "assistant", "content": None, "tool_calls": [_call("c1"), _call("c2", "search", '{"q": "x"}')]},
        {"role": "tool", "tool_call_id": "c2", "name": "search", "content": "found x"},
        {"role": "tool", "tool_call_id": "c1", "name": "read_file", "content": "file body"},
        {"role": "assistant", "content": "done"},
        {"role": "user", "content": "thanks"},
    ]


# --- parsing ---------------------------------------------------------------------------------------------------
def test_openai_shape_parses_and_round_trips():
    raw = {"role": "assistant", "content": "let me look", "tool_calls": [_call("c1", "read_file", '{"path":"/x"}')]}
    m = parse_message(raw)
    assert m.role == "assistant" and m.content == "let me look"
    assert m.tool_calls == (ToolCall(id="c1", name="read_file", arguments='{"path":"/x"}'),)
    assert m.tool_call_ids == ("c1",)
    assert m.to_dict() == raw  # arguments kept verbatim, id left out
    assert m.to_dict(with_id=True)["id"] == m.id and m.id.startswith("m-")


def test_flat_shape_of_shared_data_parses_to_openai_shape():
    raw = {"role": "assistant", "content": "",
           "tool_calls": [{"id": "t1", "name": "bash", "arguments": '{"cmd": "ls"}'}]}
    m = parse_message(raw)
    assert m.tool_calls[0] == ToolCall(id="t1", name="bash", arguments='{"cmd": "ls"}')
    assert m.to_dict()["tool_calls"] == [{"id": "t1", "type": "function",
                                          "function": {"name": "bash", "arguments": '{"cmd": "ls"}'}}]


def test_dict_arguments_are_serialized_and_missing_arguments_default():
    m = parse_message({"role": "assistant", "content": None,
                       "tool_calls": [{"id": "a", "name": "f", "arguments": {"k": "é"}}, {"id": "b", "name": "g"}]})
    assert json.loads(m.tool_calls[0].arguments) == {"k": "é"}
    assert m.tool_calls[1].arguments == "{}"


def test_given_id_is_kept_and_assigned_ids_are_unique():
    assert parse_message({"id": "mine", "role": "user", "content": "x"}).id == "mine"
    ids = {parse_message({"role": "user", "content": "x"}).id for _ in range(50)}
    assert len(ids) == 50


def test_message_object_passes_through_unchanged():
    m = parse_message({"role": "user", "content": "x"})
    assert parse_message(m) is m


def test_content_parts_and_message_text():
    parts = [{"type": "text", "text": "hello"}, {"type": "image_url", "image_url": {"url": "http://x/y.png"}}]
    m = parse_message({"role": "user", "content": parts})
    assert m.content == parts and m.content is not parts  # copied, not aliased
    assert message_text(m) == "hello"
    a = parse_message({"role": "assistant", "content": "see", "tool_calls": [_call("c9", "f", '{"a": 1}')]})
    assert message_text(a) == 'see\nf({"a": 1})'


def test_assistant_content_none_without_calls_becomes_empty_text():
    assert parse_message({"role": "assistant", "content": None}).content == ""
    assert parse_message({"role": "assistant", "content": None, "tool_calls": [_call()]}).content is None


def test_fingerprint_ignores_id_and_null_versus_empty_content():
    a = parse_message({"role": "assistant", "content": None, "tool_calls": [_call()]})
    b = parse_message({"id": "other", "role": "assistant", "content": "", "tool_calls": [_call()]})
    assert a.fingerprint() == b.fingerprint()
    c = parse_message({"role": "assistant", "content": "different", "tool_calls": [_call()]})
    assert c.fingerprint() != a.fingerprint()


def test_fingerprint_ignores_json_formatting_of_tool_arguments():
    # the provider returns compact JSON, a framework (LangChain) re-serializes the same arguments with spaces:
    # it is the same message, and the agent's next call must not be rejected as an edited history
    a = parse_message({"role": "assistant", "content": None,
                       "tool_calls": [_call("c1", "f", '{"b":2,"a":[1,"é"]}')]})
    b = parse_message({"role": "assistant", "content": None,
                       "tool_calls": [_call("c1", "f", '{"a": [1, "é"], "b": 2}')]})
    assert a.fingerprint() == b.fingerprint()
    assert a.canonical_json() != b.canonical_json()  # the store still keeps each byte-exact
    c = parse_message({"role": "assistant", "content": None, "tool_calls": [_call("c1", "f", '{"a": [1], "b": 2}')]})
    assert c.fingerprint() != a.fingerprint()


def test_canonical_json_is_sorted_compact_utf8_with_id():
    m = parse_message({"id": "x1", "role": "user", "content": "é 🙂\r\n"})
    assert m.canonical_json() == '{"content":"é 🙂\\r\\n","id":"x1","role":"user"}'


# --- LangChain -------------------------------------------------------------------------------------------------
def test_langchain_round_trip_both_ways():
    from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

    msgs = parse_messages(_history())
    lc = [to_langchain(m) for m in msgs]
    assert [type(x) for x in lc] == [SystemMessage, HumanMessage, AIMessage, ToolMessage, ToolMessage, AIMessage,
                                     HumanMessage]
    assert lc[2].tool_calls[0]["name"] == "read_file" and lc[2].tool_calls[0]["args"] == {"path": "/a.txt"}
    assert lc[3].tool_call_id == "c2" and lc[3].content == "found x"
    back = [parse_message(x) for x in lc]
    for orig, b in zip(msgs, back, strict=True):
        assert b.id == orig.id and b.role == orig.role and b.content == orig.content
        assert b.tool_call_id == orig.tool_call_id and b.tool_call_ids == orig.tool_call_ids
        assert [json.loads(t.arguments) for t in b.tool_calls] == [json.loads(t.arguments) for t in orig.tool_calls]
        assert b.fingerprint() == orig.fingerprint()
    validate_history(back)


def test_langchain_messages_parse_directly():
    from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

    m = parse_message(AIMessage(content="", tool_calls=[{"id": "z", "name": "g", "args": {"q": "é"}}]))
    assert m.role == "assistant" and m.content is None and m.tool_calls[0].name == "g"
    assert json.loads(m.tool_calls[0].arguments) == {"q": "é"}
    h = parse_message(HumanMessage(content="hello", id="h-1"))
    assert (h.role, h.content, h.id) == ("user", "hello", "h-1")
    t = parse_message(ToolMessage(content="out", tool_call_id="z"))
    assert (t.role, t.tool_call_id) == ("tool", "z")
    hist = parse_messages([HumanMessage(content="task"), AIMessage(content="", tool_calls=[
        {"id": "z", "name": "g", "args": {}}]), ToolMessage(content="out", tool_call_id="z")])
    assert [x.role for x in hist] == ["user", "assistant", "tool"]


def test_unsupported_langchain_type_is_rejected():
    from langchain_core.messages import ChatMessage

    with pytest.raises(InvalidMessageError, match="unsupported LangChain message type"):
        parse_message(ChatMessage(content="x", role="critic"))


# --- litellm -----------------------------------------------------------------------------------------------------
def test_response_message_from_litellm_mock_completion():
    import litellm

    resp = litellm.completion(model="gpt-4o", messages=[{"role": "user", "content": "x"}], mock_response="hi there")
    out = response_message(resp)
    assert out == {"role": "assistant", "content": "hi there"}
    m = parse_message(resp.choices[0].message)  # a litellm Message object parses directly too
    assert (m.role, m.content) == ("assistant", "hi there")


def test_response_message_from_litellm_model_response_with_tool_calls():
    import litellm

    resp = litellm.ModelResponse(choices=[litellm.Choices(message=litellm.Message(
        role="assistant", content=None, tool_calls=[_call("c1", "f", '{"a": 1}'), _call("c2", "g", "")]))])
    out = response_message(resp)
    assert out["role"] == "assistant" and out["content"] is None
    assert out["tool_calls"] == [_call("c1", "f", '{"a": 1}'), _call("c2", "g", "{}")]
    m = parse_message(out)
    assert m.tool_call_ids == ("c1", "c2")


def test_response_message_from_dicts_and_bad_responses():
    flat = {"choices": [{"message": {"role": "assistant", "content": None,
                                     "tool_calls": [{"id": "c", "name": "f", "arguments": '{"x": 2}'}]}}]}
    assert response_message(flat)["tool_calls"] == [_call("c", "f", '{"x": 2}')]
    with pytest.raises(InvalidMessageError, match="no choices"):
        response_message({"choices": []})
    with pytest.raises(InvalidMessageError, match="no message"):
        response_message({"choices": [{"index": 0}]})


# --- bad input -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("raw", "problem"), [
    ({"role": "robot", "content": "x"}, "unknown role 'robot'"),
    ({"content": "x"}, "unknown role None"),
    ({"role": "user", "content": 5}, "content must be text"),
    ({"role": "user", "content": [{"text": "no type"}]}, "content part 0"),
    ({"role": "user", "content": "x", "tool_calls": [_call()]}, "only assistant messages may carry tool_calls"),
    ({"role": "assistant", "content": None, "tool_calls": "call"}, "tool_calls must be a list"),
    ({"role": "assistant", "content": None, "tool_calls": [5]}, "tool_calls[0] must be an object"),
    ({"role": "assistant", "content": None, "tool_calls": [{"name": "f"}]}, "tool_calls[0] has no string id"),
    ({"role": "assistant", "content": None, "tool_calls": [{"id": "c", "arguments": "{}"}]}, "has no function name"),
    ({"role": "assistant", "content": None, "tool_calls": [_call("c", "f", "{not json")]}, "not valid JSON"),
    ({"role": "assistant", "content": None, "tool_calls": [_call("c", "f", 42)]}, "arguments must be JSON text"),
    ({"role": "assistant", "content": None, "tool_calls": [_call("c"), _call("c")]}, "duplicate tool call ids"),
    ({"role": "tool", "content": "x"}, "tool message has no tool_call_id"),
    ({"role": "user", "content": "x", "tool_call_id": "c"}, "tool_call_id is only allowed on tool messages"),
    ({"role": "user", "content": "x", "name": 3}, "name must be text"),
    ({"role": "user", "content": "bad \ud800 surrogate"}, "UTF-8"),
    ({"role": "user", "content": [{"type": "text", 1: "x"}]}, "content part 0 has a key that is not text"),
    ({"role": "user", "content": [{"type": "image", "data": b"\x89PNG"}]}, "not JSON-serializable"),
    ({"role": "assistant", "content": None, "tool_calls": [_call("c", "f", '{"a": "\\ud800"}')]}, None),
])
def test_bad_message_names_index_id_and_problem(raw, problem):
    raw = {"id": "bad-1", **raw}
    if problem is None:  # JSON escapes of lone surrogates are valid JSON text; the text itself is ASCII
        m = parse_message(raw, index=7)
        assert m.tool_calls[0].arguments == '{"a": "\\ud800"}'
        assert len(m.fingerprint()) == 64 and m.canonical_json().encode("utf-8")
        return
    with pytest.raises(InvalidMessageError) as ei:
        parse_message(raw, index=7)
    msg = str(ei.value)
    assert "index 7" in msg and "'bad-1'" in msg and problem in msg, msg
    assert ei.value.index == 7 and ei.value.message_id == "bad-1" and problem in ei.value.problem


def test_non_dict_message_is_rejected_with_its_index():
    with pytest.raises(InvalidMessageError, match=r"index 3.*expected a dict, got int"):
        parse_message(5, index=3)
    with pytest.raises(InvalidMessageError, match="messages must be a list"):
        parse_messages("hello")


def test_parse_messages_reports_index_of_the_bad_message():
    hist = _history()
    hist[4] = {"role": "tool", "content": "no id"}
    with pytest.raises(InvalidMessageError, match="index 4"):
        parse_messages(hist)


def test_duplicate_message_ids_are_rejected():
    with pytest.raises(InvalidMessageError) as ei:
        parse_messages([{"id": "a", "role": "user", "content": "x"}, {"id": "a", "role": "assistant", "content": "y"}])
    assert "index 1" in str(ei.value) and "'a'" in str(ei.value) and "also at index 0" in str(ei.value)


def test_orphan_tool_result_is_rejected():
    hist = [{"role": "user", "content": "task"}, {"id": "t9", "role": "tool", "tool_call_id": "nope", "content": "x"}]
    with pytest.raises(HistoryError) as ei:
        parse_messages(hist)
    msg = str(ei.value)
    assert "index 1" in msg and "'t9'" in msg and "'nope' has no matching tool call" in msg


def test_call_without_result_before_next_message_is_rejected():
    hist = _history()
    del hist[3]  # c2's result is missing; the next non-tool message is the assistant at (new) index 4
    with pytest.raises(HistoryError) as ei:
        validate_history(parse_messages(hist, validate=False))
    assert "index 4" in str(ei.value) and "c2 have no result before this assistant message" in str(ei.value)


def test_open_tail_is_allowed_only_when_asked():
    hist = _history()[:4]  # c1 still pending at the end
    validate_history(hist, allow_open_tail=True)
    with pytest.raises(HistoryError, match="c1 have no result at the end"):
        validate_history(hist)


def test_duplicate_result_for_one_call_is_rejected():
    hist = _history()
    hist.insert(5, {"role": "tool", "tool_call_id": "c1", "content": "again"})
    with pytest.raises(HistoryError, match=r"index 5.*'c1' has no matching tool call"):
        validate_history(hist)


def test_system_message_must_be_first():
    hist = _history() + [{"role": "system", "content": "late"}]
    with pytest.raises(HistoryError, match=r"index 7.*system message is not at the start"):
        validate_history(hist)


def test_order_and_system_first_checks():
    msgs = parse_messages(_history())
    order = {m.id: i for i, m in enumerate(msgs)}
    validate_history(msgs, order=order, system_first=msgs[0].id)
    swapped = [msgs[0], msgs[5], msgs[1], msgs[2], msgs[3], msgs[4], msgs[6]]
    with pytest.raises(HistoryError, match="out of its original order"):
        validate_history(swapped, order=order)
    with pytest.raises(HistoryError, match="leading system message"):
        validate_history(msgs[1:], system_first=msgs[0].id)


@pytest.mark.parametrize(("history", "problem"), [
    ([{"role": "assistant", "tool_calls": [{}]}], "tool_calls[0] has no string id"),
    ([{"role": "assistant", "tool_calls": [5]}], "tool_calls[0] has no string id"),
    ([{"role": "assistant", "tool_calls": "c1"}], "tool_calls must be a list"),
    ([{"role": "assistant", "tool_calls": [{"id": "a"}, {"id": "a"}]}], "duplicate tool call id 'a'"),
    ([{"role": "assistant", "tool_calls": [{"id": "a"}]}, {"role": "tool", "tool_call_id": ["a"]}], "has no matching"),
])
def test_validate_history_rejects_garbage_tool_calls(history, problem):
    with pytest.raises(HistoryError) as ei:
        validate_history(history)
    assert problem in str(ei.value)


def test_validate_rejects_unknown_role_and_non_dicts():
    with pytest.raises(HistoryError, match="unknown role 'x'"):
        validate_history([{"role": "x"}])
    with pytest.raises(HistoryError, match="expected a message dict"):
        validate_history([5])


# --- rounds ----------------------------------------------------------------------------------------------------
def test_group_rounds_keeps_assistant_and_parallel_results_together():
    msgs = parse_messages(_history())
    rounds = group_rounds(msgs)
    assert [r.ids for r in rounds] == [(msgs[0].id,), (msgs[1].id,), (msgs[2].id, msgs[3].id, msgs[4].id),
                                       (msgs[5].id,), (msgs[6].id,)]
    assert [r.role for r in rounds] == ["system", "user", "assistant", "assistant", "user"]
    assert all(r.complete for r in rounds)


def test_group_rounds_marks_open_tail_incomplete():
    msgs = parse_messages(_history()[:4])
    last = group_rounds(msgs)[-1]
    assert last.ids == (msgs[2].id, msgs[3].id) and last.complete is False


def test_every_message_in_exactly_one_round():
    msgs = parse_messages(_history() * 1, validate=True)
    flat = [i for r in group_rounds(msgs) for i in r.ids]
    assert flat == [m.id for m in msgs]


def test_message_model_is_frozen_and_strict():
    m = parse_message({"role": "user", "content": "x"})
    with pytest.raises(Exception):
        m.content = "y"  # type: ignore[misc]
    with pytest.raises(Exception):
        Message(id="a", role="user", content="x", extra=1)  # type: ignore[call-arg]


# --- fuzz: wrong types never escape as anything but InvalidMessageError ----------------------------------------
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=8))
_json = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.one_of(st.text(max_size=6), st.integers()), inner, max_size=3)),
    max_leaves=8)
_call_like = st.fixed_dictionaries({}, optional={
    "id": st.one_of(st.text(max_size=5), _scalars), "type": st.just("function"),
    "name": st.one_of(st.sampled_from(["f", ""]), _scalars),
    "arguments": st.one_of(st.sampled_from(["{}", '{"a": 1}', "{bad", "[1]", ""]), _json),
    "function": st.one_of(_json, st.fixed_dictionaries({}, optional={"name": _scalars | st.just("f"),
                                                                     "arguments": _json | st.just("{}")}))})
_part = st.one_of(st.fixed_dictionaries({"type": st.sampled_from(["text", "image_url"])}, optional={"text": _scalars}),
                  st.dictionaries(st.one_of(st.just("type"), st.just("text"), st.integers()), _json, max_size=3))
_message_like = st.fixed_dictionaries({}, optional={
    "role": st.one_of(st.sampled_from(["system", "user", "assistant", "tool", "robot"]), _scalars),
    "content": st.one_of(_json, st.lists(st.one_of(_json, _part)), st.text(max_size=20)),
    "tool_calls": st.one_of(_json, st.lists(st.one_of(_call_like, _json), max_size=3)),
    "tool_call_id": st.one_of(_scalars, st.just("c1"), _json),
    "name": _scalars,
    "id": st.one_of(_scalars, st.text(min_size=190, max_size=260)),
})


@given(raw=st.one_of(_message_like, _json))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_any_input_parses_or_raises_invalid_message_error(raw):
    try:
        m = parse_message(raw, index=0)
    except InvalidMessageError as exc:
        assert "index 0" in str(exc)
        return
    assert isinstance(m, Message)
    assert m.canonical_json().encode("utf-8") and len(m.fingerprint()) == 64
    assert parse_message(json.loads(m.canonical_json())) == m  # what the store reads back is the same message


@given(history=st.lists(st.one_of(_message_like, _json), max_size=4))
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_validate_history_raises_only_history_error(history):
    try:
        validate_history(history)
    except HistoryError:
        pass


def test_overlong_message_id_is_rejected():
    with pytest.raises(InvalidMessageError, match="at most 200"):
        parse_message({"id": "x" * 201, "role": "user", "content": "x"}, index=2)
    assert parse_message({"id": "x" * 200, "role": "user", "content": "x"}).id == "x" * 200


def test_seeded_message_ids_repeat_per_seed_and_fall_back_to_random_outside():
    from agentmem.messages import new_message_id, parse_message, seeded_message_ids

    with seeded_message_ids("task-a"):
        first = [parse_message({"role": "user", "content": "hi"}).id for _ in range(3)]
    with seeded_message_ids("task-a"):
        again = [new_message_id() for _ in range(3)]
    with seeded_message_ids("task-b"):
        other = new_message_id()
    assert first == again and len(set(first)) == 3 and other not in first
    assert all(i.startswith("m-") and len(i) == 22 for i in first)
    assert new_message_id() != new_message_id()  # outside a seeded block: random again
