"""summarize-by-thinking: the prompt, the faithfulness guard, merged lines, the counted budget."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from agentmem.messages import parse_messages
from agentmem.primitives import EmptyThinkingError, SummarizeConfig, summarize_by_thinking, thinking_request
from agentmem.primitives.fold import LINES_HEAD, STATE_HEAD
from agentmem.primitives.summarize import SYSTEM_PROMPT, SourceIndex, guard_lines, guard_report, line_problems
from agentmem.testing import synthetic_history
from agentmem.view import BlockItem, EventError
from histories import COUNTER, snapshot, view_of

RAW = [
    {"role": "system", "content": "You are an airline agent."},
    {"role": "user", "content": "Change reservation ZX9K2P to flight HAT136."},
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "name": "get_reservation", "arguments": '{"reservation_id": "ZX9K2P"}'}]},
    {"role": "tool", "tool_call_id": "c1", "name": "get_reservation",
     "content": '{"user_id": "mia_li_3668", "flights": ["HAT001"], "amount": 1234.56}'},
    {"role": "assistant", "content": "The reservation belongs to mia_li_3668."},
    {"role": "user", "content": "yes, proceed"},
]


@pytest.fixture
def view():
    return view_of(parse_messages(RAW))


def _span(view, a, b):
    return [it.key for it in view.items[a:b]]


def test_thinking_request_shows_task_and_span(view):
    req = thinking_request(view, span=_span(view, 2, 5), task="Change reservation ZX9K2P", counter=COUNTER,
                           config=SummarizeConfig(max_block_tokens=200))
    assert req.messages[0] == {"role": "system", "content": SYSTEM_PROMPT}
    user = req.messages[1]["content"]
    assert "Change reservation ZX9K2P" in user and "<result of get_reservation>" in user
    assert "mia_li_3668" in user and "<assistant>" in user
    # a small span gets a short request: at most span tokens / target_ratio, never under 32, never over the cap
    span_tokens = sum(view.get(k).tokens for k in _span(view, 2, 5))
    expected = max(32, min(200, int(span_tokens / 4.0)))
    assert req.max_new_tokens == expected and f"at most {expected} tokens" in user
    big = thinking_request(view, span=_span(view, 2, 5), task="t", counter=COUNTER,
                           config=SummarizeConfig(max_block_tokens=200, target_ratio=1.0))
    assert big.max_new_tokens == min(200, span_tokens)
    assert req.max_new_tokens == expected and req.purpose == "summarize"
    with pytest.raises(EventError):
        thinking_request(view, span=_span(view, 2, 3), task="t", counter=COUNTER)


def test_thinking_request_cuts_long_messages_and_bounds_the_transcript():
    raw = [{"role": "user", "content": "task"}] + [
        {"role": "assistant", "content": "HEAD " + "x " * 5000 + " TAIL"} for _ in range(10)]
    view = view_of(parse_messages(raw))
    cfg = SummarizeConfig(per_message_chars=200, max_source_tokens=300)
    req = thinking_request(view, span=_span(view, 1, 11), task="t", counter=COUNTER, config=cfg)
    user = req.messages[1]["content"]
    assert "HEAD" in user and "TAIL" in user and "chars cut" in user
    transcript = user.split("Transcript span to compress:\n", 1)[1].rsplit("\n\nWrite the state and the lines", 1)[0]
    assert COUNTER.text(transcript) <= 310


def test_guard_drops_invented_identifiers(view):
    thinking = ("Reservation ZX9K2P belongs to mia_li_3668.\n"
                "Booked flight HAT999 with payment pm_777777.\n"  # neither value is in the span
                "Amount due 1234.56.\n\n")
    new, ev = summarize_by_thinking(view, span=_span(view, 2, 5), thinking=thinking, counter=COUNTER,
                                    config=SummarizeConfig(merge_lines=False))
    assert "ZX9K2P belongs to mia_li_3668" in ev.text and "Amount due 1234.56" in ev.text
    assert "HAT999" not in ev.text and "pm_777777" not in ev.text
    assert ev.kind == "summarize" and ev.meta["guard_dropped"] == 1 and ev.meta["lines_merged"] == 0
    blk = new.get(f"blk-{ev.seq}")
    assert isinstance(blk, BlockItem) and blk.kind == "summarize" and ev.text.startswith("[agentmem: summarize block")
    new.validate(allow_open_tail=False)


def test_guard_flag_and_off_modes(view):
    thinking = "ok ZX9K2P\ninvented HAT999"
    _, flagged = summarize_by_thinking(view, span=_span(view, 2, 5), thinking=thinking, counter=COUNTER,
                                       config=SummarizeConfig(guard="flag", merge_lines=False))
    assert "(unverified) invented HAT999" in flagged.text
    _, off = summarize_by_thinking(view, span=_span(view, 2, 5), thinking=thinking, counter=COUNTER,
                                   config=SummarizeConfig(guard="off", merge_lines=False))
    assert "invented HAT999" in off.text and "(unverified)" not in off.text
    kept, dropped = guard_lines(thinking, "ok ZX9K2P")
    assert kept == ["ok ZX9K2P"] and dropped == ["invented HAT999"]


def test_lines_the_thinker_left_out_are_merged_in_their_original_wording(view):
    _, ev = summarize_by_thinking(view, span=_span(view, 2, 5), thinking="The user owns the reservation.",
                                  counter=COUNTER)
    assert ev.meta["lines_merged"] >= 1
    body = ev.text.split("\n")
    assert STATE_HEAD in body and LINES_HEAD in body
    assert "- The user owns the reservation." in body  # the thinker's loose line becomes a note
    lines = body[body.index(LINES_HEAD) + 1:]
    assert lines[0].startswith("» get_reservation")  # under the call that printed it
    # the entity's line as the extractive fold keeps it (fields together), not a bare values list
    assert any("user_id=mia_li_3668" in ln and "amount=1234.56" in ln for ln in lines)
    assert not any(ln.startswith("values: ") for ln in body)


def test_structured_thinking_keeps_its_sections_and_merges_only_what_it_dropped(view):
    thinking = "\n".join([STATE_HEAD, "notes:", "- Reservation ZX9K2P belongs to mia_li_3668.", LINES_HEAD,
                           "» get_reservation", "user_id=mia_li_3668, flights HAT001, amount=1234.56"])
    _, ev = summarize_by_thinking(view, span=_span(view, 2, 5), thinking=thinking, counter=COUNTER)
    body = ev.text.split("\n")[1:]
    assert body[:3] == [STATE_HEAD, "notes:", "- Reservation ZX9K2P belongs to mia_li_3668."]
    assert "user_id=mia_li_3668, flights HAT001, amount=1234.56" in body
    assert ev.meta["lines_merged"] == 0  # every value of the extractive line is already written


def test_the_prompt_asks_for_the_extractive_structure(view):
    for part in (STATE_HEAD, LINES_HEAD, "done:", "failed:", "notes:", "open:", "copied exactly"):
        assert part in SYSTEM_PROMPT


@pytest.mark.parametrize("thinking", ["", "   \n\n", "only invented HAT999 and pm_777777"])
def test_empty_or_fully_invented_thinking_raises(view, thinking):
    before = snapshot(view)
    with pytest.raises(EmptyThinkingError):
        summarize_by_thinking(view, span=_span(view, 2, 5), thinking=thinking, counter=COUNTER)
    assert snapshot(view) == before


def test_block_is_bounded_by_counting():
    view = view_of(parse_messages(synthetic_history(10, output_chars=400)))
    units = view.units()[2:10]
    span = [it.key for it in view.items[units[0][0]:units[-1][1]]]
    thinking = "\n".join(f"step {i}: read /data/invoices/{i}_0.json" for i in range(300))
    cfg = SummarizeConfig(max_block_tokens=150, lines_tokens=40)
    new, ev = summarize_by_thinking(view, span=span, thinking=thinking, counter=COUNTER, config=cfg)
    body = ev.text.split("\n", 1)[1]
    assert COUNTER.text(body) <= 152
    assert new.get(f"blk-{ev.seq}").tokens < sum(view.get(k).tokens for k in span)


def test_summarize_config_is_strict():
    with pytest.raises(ValidationError):
        SummarizeConfig(guard="maybe")
    with pytest.raises(ValidationError):
        SummarizeConfig(temperature=0.2)


# --- the faithfulness guard checks whole tokens, status words, names and counts (issue 10) ---------------------

GUARD_SOURCE = ('{"user_id": "mia_li_3668", "flights": ["HAT001"], "amount": 1234.56, "status": "cancelled", '
                '"name": "Mia Li", "passengers": 2}\nThe reservation belongs to mia_li_3668. Card ending 4421.')


@pytest.mark.parametrize("line, problem", [
    ("user mia_li_36", "value 'mia_li_36'"),            # a prefix of an id is not the id
    ("refund 34.5 to the card", "value '34.5'"),         # a piece of 1234.56 is not an amount of the span
    ("flight HAT00", "value 'HAT00'"),                   # a prefix of a flight code
    ("card ending 442", "value '442'"),                  # a prefix of a number
    ("user li_3668", "value 'li_3668'"),                 # a suffix of an id
    ("Reservation CONFIRMED", "status 'confirmed'"),     # the span says cancelled
    ("The passenger is John Smith", "name 'John'"),      # an invented name
    ("3 passengers travel", "count '3 passengers'"),     # an invented count
    ("five bags checked", "count 'five bags'"),          # an invented count, spelled out
    ("payment approved for HAT001", None),               # approved: no contrary word in the span -> supported
])
def test_guard_catches_unfaithful_lines(line, problem):
    kept, dropped, why = guard_report(line, GUARD_SOURCE)
    if problem is None:
        assert kept == [line] and not dropped
    else:
        assert dropped == [line] and kept == [] and why[0].startswith(problem), why


@pytest.mark.parametrize("line", [
    "user mia_li_3668 owns it.",      # the id at a sentence end
    "amount $1,234.56",               # the same amount, formatted
    "amount 1234.560",                # the same number
    "flight HAT001 status: cancelled",
    "Passenger Mia Li, 2 passengers",
    "The reservation was cancelled; card 4421.",
])
def test_guard_keeps_faithful_lines(line):
    kept, dropped, why = guard_report(line, GUARD_SOURCE)
    assert kept == [line] and not dropped, why


def test_guard_source_index_whole_tokens():
    idx = SourceIndex("see src/pkg/mod.py line 120; token abc123def; v1.2.3")
    assert idx.has_token("src/pkg/mod.py") and idx.has_token("abc123def") and idx.has_token("120")
    assert not idx.has_token("abc123") and not idx.has_token("12") and not idx.has_token("pkg/mod")
    assert not line_problems("open src/pkg/mod.py at 120", idx)


def test_status_contradiction_is_reported_in_the_block_meta(view):
    thinking = ("Reservation ZX9K2P CONFIRMED for mia_li_3668.\nUser mia_li_3668 asked to change to HAT136.\n"
                "Reservation ZX9K2P belongs to mia_li_3668, amount 1234.56.")
    raw = [dict(m) for m in RAW]
    raw[3] = {**raw[3], "content": raw[3]["content"].replace("1234.56", '1234.56, "status": "cancelled"')}
    v = view_of(parse_messages(raw))
    _, ev = summarize_by_thinking(v, span=_span(v, 2, 5), thinking=thinking, counter=COUNTER,
                                  config=SummarizeConfig(merge_lines=False))
    assert "belongs to mia_li_3668, amount 1234.56" in ev.text
    assert "CONFIRMED" not in ev.text and "change to HAT136" not in ev.text  # HAT136 is in the task, not the span
    assert ev.meta["guard_dropped"] == 2 and any("confirmed" in p for p in ev.meta["guard_problems"])


def test_lines_that_echo_the_prompt_template_are_dropped(view):
    thinking = "\n".join([STATE_HEAD, "done:", "- an action that changed something (an edit, a write, an API call) "
                           "and its outcome", "notes:", "- Reservation ZX9K2P belongs to mia_li_3668.", "open:",
                           "- what is still to do", LINES_HEAD, "» the call that printed them",
                           "Leave out a category that has nothing. Copy every value and line exactly; do not inv"])
    _, ev = summarize_by_thinking(view, span=_span(view, 2, 5), thinking=thinking, counter=COUNTER)
    assert "- Reservation ZX9K2P belongs to mia_li_3668." in ev.text
    for echo in ("an action that changed something", "what is still to do", "» the call that printed them",
                 "Leave out a category"):
        assert echo not in ev.text
    assert ev.meta["guard_dropped"] == 4 and "echo of the prompt's template" in ev.meta["guard_problems"]


def test_a_repeated_thinker_line_is_kept_once(view):
    note = "- Reservation ZX9K2P belongs to mia_li_3668."
    thinking = "\n".join([STATE_HEAD, "notes:", note, note, note, "done:", "- looked up ZX9K2P", "- looked up ZX9K2P"])
    _, ev = summarize_by_thinking(view, span=_span(view, 2, 5), thinking=thinking, counter=COUNTER)
    body = ev.text.split("\n")
    assert body.count(note) == 1 and body.count("- looked up ZX9K2P") == 1


def test_the_prompt_shows_no_placeholder_lines_a_small_model_would_copy():
    """A 1.5B model given placeholder bullets ("- what is still to do") copied them verbatim into every block, so
    every thinking fold fell back to extractive: the structure is described in prose, headers on their own lines."""
    placeholder_lines = [ln for ln in SYSTEM_PROMPT.splitlines() if ln.startswith(("- ", "» "))]
    assert placeholder_lines == []


def test_lines_without_any_word_or_value_are_dropped(view):
    thinking = "\n".join([STATE_HEAD, "notes:", "- -", "- Reservation ZX9K2P belongs to mia_li_3668.", "- …"])
    _, ev = summarize_by_thinking(view, span=_span(view, 2, 5), thinking=thinking, counter=COUNTER)
    assert "- -" not in ev.text.splitlines() and "- …" not in ev.text.splitlines()
    assert "- Reservation ZX9K2P belongs to mia_li_3668." in ev.text


def test_a_planned_block_size_is_filled_with_salient_lines_beyond_the_background_cap():
    """Given the policy's allotment (`block_tokens`), the lines the thinker left out fill the block up to it, as an
    extractive fold of the same plan would; without one (a background fold) they stay within `lines_tokens`. The
    thinker's short note is the same in both."""
    view = view_of(parse_messages(synthetic_history(30, output_chars=600)))
    units = view.units()[2:28]
    span = [it.key for it in view.items[units[0][0]:units[-1][1]]]
    cfg = SummarizeConfig(max_block_tokens=300, lines_tokens=100)
    note = "Invoices are read one file at a time."
    _, capped = summarize_by_thinking(view, span=span, thinking=note, counter=COUNTER, config=cfg)
    _, planned = summarize_by_thinking(view, span=span, thinking=note, counter=COUNTER, config=cfg,
                                       block_tokens=1200)
    capped_body, planned_body = (ev.text.split("\n", 1)[1] for ev in (capped, planned))
    assert f"- {note}" in capped_body and f"- {note}" in planned_body
    assert COUNTER.text(capped_body) <= 300 < COUNTER.text(planned_body) <= 1202
    assert planned.meta["lines_merged"] > 2 * capped.meta["lines_merged"] > 0


def test_a_small_models_bulleted_structure_is_put_right(view):
    """Read off sampled thinking blocks: the 1.5B model wrote its category names as bold labels or as bullets in
    backticks, and its copied lines as bullets among the notes (`- » get_reservation`, `- ## lines kept …`). They
    are parsed as the structure they stand for: entries under their category, the copied line under its call."""
    thinking = "\n".join([STATE_HEAD, "notes:", "- **done:** looked up reservation ZX9K2P.",
                          "- - `open:`", "- confirm the change with the user.", "- » get_reservation",
                          '- {"user_id": "mia_li_3668", "flights": ["HAT001"], "amount": 1234.56}', f"- {LINES_HEAD}"])
    _, ev = summarize_by_thinking(view, span=_span(view, 2, 5), thinking=thinking, counter=COUNTER,
                                  config=SummarizeConfig(merge_lines=False))
    body = ev.text.split("\n")[1:]
    assert body[:6] == [STATE_HEAD, "done:", "- looked up reservation ZX9K2P.", "open:",
                        "- confirm the change with the user.", LINES_HEAD]
    assert body[6:] == ["» get_reservation", '- {"user_id": "mia_li_3668", "flights": ["HAT001"], "amount": 1234.56}']
    assert body.count(LINES_HEAD) == 1
