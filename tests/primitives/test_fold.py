"""fold: extractive blocks that keep state and salient lines in their original wording, within a counted budget."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from agentmem.messages import parse_messages
from agentmem.primitives import FoldConfig, fold
from agentmem.primitives.fold import LINES_HEAD, STATE_HEAD
from agentmem.primitives._common import item_text
from agentmem.testing import synthetic_history
from agentmem.values import extract_values
from agentmem.view import BLOCK_HEADER, BlockItem, EventError
from histories import COUNTER, snapshot, view_of


@pytest.fixture
def view():
    return view_of(parse_messages(synthetic_history(8, output_chars=300)))


def _span(view, start, end):
    return [it.key for it in view.items[start:end]]


def _body(text):
    return text.split("\n", 1)[1] if "\n" in text else ""


def test_fold_keeps_values_and_names_what_it_covers(view):
    span = _span(view, 2, 10)
    new, ev = fold(view, span=span, counter=COUNTER)
    blk = new.get(ev.text and f"blk-{ev.seq}")
    assert isinstance(blk, BlockItem) and blk.covers == tuple(span) and blk.text == ev.text
    header = ev.text.splitlines()[0]
    assert header.startswith(BLOCK_HEADER + ": fold block blk-1 covers 8 earlier messages")
    assert span[0] in header and span[-1] in header and 'ids=["blk-1"]' in header
    source = "\n".join(item_text(view.get(k)) for k in span)
    for value in ["/data/invoices/0_0.json", "/data/invoices/3_0.json"] + extract_values(source)[:10]:
        assert value in ev.text, value
    assert LINES_HEAD in ev.text and "» read_file(path=\"/data/invoices/0_0.json\"" in ev.text
    assert ev.covers == tuple(span) and ev.kind == "fold"
    assert ev.meta["extractive"] is True and ev.meta["span_tokens"] == sum(view.get(k).tokens for k in span)
    assert ev.meta["block_tokens"] == blk.tokens and ev.meta["compression_ratio"] > 1


@given(budget=st.integers(32, 400), n=st.integers(1, 6))
@settings(max_examples=30, deadline=None)
def test_block_body_respects_the_budget_and_values_are_whole(budget, n):
    view = view_of(parse_messages(synthetic_history(8, output_chars=300)))
    units = view.units()[2:2 + n]
    span = _span(view, units[0][0], units[-1][1])
    new, ev = fold(view, span=span, counter=COUNTER, config=FoldConfig(max_block_tokens=budget))
    body = _body(ev.text)
    assert COUNTER.text(body) <= budget + 2  # counted, not estimated (+2: line joins may merge tokens)
    new.validate(allow_open_tail=False)


def test_error_lines_are_flagged():
    raw = [{"role": "user", "content": "task"},
           {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "name": "bash",
                                                                   "arguments": '{"cmd": "pytest"}'}]},
           {"role": "tool", "tool_call_id": "c1", "content": "collected 3\nFileNotFoundError: config.yaml not found"},
           {"role": "assistant", "content": "I will create the config."}]
    view = view_of(parse_messages(raw))
    _, ev = fold(view, span=_span(view, 1, 4), counter=COUNTER)
    assert STATE_HEAD in ev.text and "failed:\n- bash: pytest → FileNotFoundError: config.yaml not found" in ev.text
    assert "open:\n- bash: pytest still failing: FileNotFoundError" in ev.text
    assert "FileNotFoundError: config.yaml not found" in ev.text.split(LINES_HEAD)[1]  # the line, original wording


def test_given_text_is_used_and_cut_to_budget(view):
    text = "\n".join(f"note {i}: amount {i}.50 on inv_{i:04d}" for i in range(200))
    _, ev = fold(view, span=_span(view, 2, 4), counter=COUNTER, text=text, config=FoldConfig(max_block_tokens=64))
    body = _body(ev.text)
    assert body.startswith("note 0: amount 0.50 on inv_0000")
    assert COUNTER.text(body) <= 66 and "note 199" not in body
    assert ev.meta["extractive"] is False


def _bash(cid, command, output):
    return [{"role": "assistant", "content": None, "tool_calls": [{"id": cid, "name": "bash",
                                                                   "arguments": json.dumps({"command": command})}]},
            {"role": "tool", "tool_call_id": cid, "content": output}]


def test_lines_the_agent_refers_to_win_and_edits_are_state():
    noise = "\n".join(f"    filler line {i} of the listing with some words" for i in range(60))
    raw = [{"role": "user", "content": "fix the timezone bug"},
           *_bash("c1", "cat src/tz/convert.py", noise + "\ndef to_utc(stamp, diff_tz):\n    return stamp.astimezone(UTC)"),
           *_bash("c2", "sed -i 's/UTC/diff_tz.zone/' src/tz/convert.py", ""),
           {"role": "assistant", "content": "The bug is in to_utc: it ignores diff_tz."},
           *_bash("c3", "python -m pytest tests/test_convert.py -q", "3 passed in 0.12s")]
    view = view_of(parse_messages(raw))
    _, ev = fold(view, span=_span(view, 1, len(view.items)), counter=COUNTER, block_tokens=220,
                 config=FoldConfig(state_share=0.4))
    body = _body(ev.text)
    assert COUNTER.text(body) <= 222
    assert "def to_utc(stamp, diff_tz):" in body  # named by the agent, so kept, in its original wording
    assert "done:\n- bash: sed -i 's/UTC/diff_tz.zone/' src/tz/convert.py → (no output)" in body
    assert "- The bug is in to_utc: it ignores diff_tz." in body  # the agent's finding
    assert "3 passed in 0.12s" in body
    assert "filler line 3 " not in body


def test_files_beside_the_ones_the_agent_works_on_are_kept_from_a_listing():
    """A `find` listing is mostly paths the agent never opens; the ones in a directory it works in are the ones it
    comes back to (the backend's `base.py` beside the `creation.py` it fixes), so those are the lines kept."""
    listing = [f"src/db/backends/sqlite/{name}.py" for name in ("base", "features", "operations")] + \
        [f"src/{app}/views/{page}.py" for app in ("auth", "admin", "forms", "mail", "cache")
         for page in ("index", "detail", "list", "edit", "delete", "export", "search", "upload")]
    raw = [{"role": "user", "content": "keepdb fails on sqlite"},
           *_bash("c1", "cat src/db/backends/sqlite/creation.py", "def _create_test_db(self, keepdb=False):"),
           *_bash("c2", "find src -name '*.py'", "\n".join(listing)),
           *_bash("c3", "python -m pytest tests/test_creation.py -q", "1 failed in 0.3s")]
    view = view_of(parse_messages(raw))
    _, ev = fold(view, span=_span(view, 1, len(view.items)), counter=COUNTER, block_tokens=260)
    body = _body(ev.text)
    for sibling in listing[:3]:
        assert sibling + "\n" in body + "\n", sibling
    assert sum(path in body for path in listing[3:]) < 5


def test_a_new_block_never_repeats_a_line_another_block_holds():
    out = "pkg/mod.py:41: def handler(event_id):\npkg/mod.py:77: handler(event_id=ev.id_42)"
    raw = [{"role": "user", "content": "task"}, *_bash("c1", "grep -n handler pkg", out),
           *_bash("c2", "grep -n handler pkg", out), *_bash("c3", "ls pkg_99", "mod.py")]
    view = view_of(parse_messages(raw))
    first, ev1 = fold(view, span=_span(view, 1, 3), counter=COUNTER)
    assert "pkg/mod.py:41: def handler(event_id):" in ev1.text
    second, ev2 = fold(first, span=_span(first, 2, 4), counter=COUNTER)
    assert "pkg/mod.py:41" not in ev2.text and ev1.text in [it.text for it in second.items if hasattr(it, "text")]


def test_refolding_a_block_keeps_its_values(view):
    first, ev1 = fold(view, span=_span(view, 2, 6), counter=COUNTER)
    values = extract_values(_body(ev1.text))[:5]
    span = [f"blk-{ev1.seq}"] + [it.key for it in first.items[3:5]]
    second, ev2 = fold(first, span=span, counter=COUNTER)
    blk = second.get(f"blk-{ev2.seq}")
    assert blk.covers == tuple(_span(view, 2, 6)) + tuple(span[1:])
    for v in values:
        assert v in ev2.text, v


def test_fold_is_pure_and_rejects_bad_spans(view):
    before = snapshot(view)
    fold(view, span=_span(view, 2, 4), counter=COUNTER)
    assert snapshot(view) == before
    for bad in ([], ["nope"], _span(view, 2, 3), _span(view, 3, 4), [view.items[2].key, view.items[5].key],
                [view.items[0].key]):
        with pytest.raises(EventError):
            fold(view, span=bad, counter=COUNTER)
    assert snapshot(view) == before


def test_fold_config_is_strict():
    with pytest.raises(ValidationError):
        FoldConfig(max_block_tokens=10)
    with pytest.raises(ValidationError):
        FoldConfig(state_share=0)
    with pytest.raises(ValidationError):
        FoldConfig(surprise=True)


def test_an_error_printed_by_a_successful_command_is_not_a_failure():
    raw = [{"role": "user", "content": "task"},
           *_bash("c1", "cat cli.py", '<returncode>0</returncode>\n<output>\nself.stderr.write("Error: %s" % e)\n'),
           *_bash("c2", "python cli.py", "<returncode>1</returncode>\n<output>\nValueError: bad port 99999\n")]
    view = view_of(parse_messages(raw))
    _, ev = fold(view, span=_span(view, 1, 5), counter=COUNTER, config=FoldConfig(state_share=0.6))
    state = ev.text.split(LINES_HEAD)[0]
    assert "- bash: python cli.py → ValueError: bad port 99999" in state and "cat cli.py" not in state


_IMPORT_CHAIN = "\n".join(f'  File "/testbed/pkg/layer{i}.py", line {i + 3}, in <module>\n'
                          f'    from pkg.layer{i + 1} import x' for i in range(12))
_TRACEBACK = ('<returncode>1</returncode>\nTraceback (most recent call last):\n'
              '  File "/testbed/repro.py", line 20, in <module>\n    pkg.setup()\n' + _IMPORT_CHAIN +
              '\n  File "<frozen importlib._bootstrap>", line 1204, in _gcd_import\n'
              "ModuleNotFoundError: No module named 'asgiref'")


def test_a_traceback_keeps_its_entry_frame_its_last_frames_and_the_error():
    raw = [{"role": "user", "content": "task"}, *_bash("c1", "python repro.py", _TRACEBACK)]
    view = view_of(parse_messages(raw))
    _, ev = fold(view, span=_span(view, 1, 3), counter=COUNTER, block_tokens=400)
    lines = ev.text.split(LINES_HEAD)[1]
    assert 'File "/testbed/repro.py", line 20, in <module>' in lines  # the agent's own entry point
    assert 'File "/testbed/pkg/layer11.py", line 14' in lines and "pkg/layer10.py" in lines  # where it failed
    assert "python repro.py still failing: ModuleNotFoundError: No module named 'asgiref'" in ev.text  # the state
    assert all(f"layer{i}.py" not in lines for i in range(1, 10)) and "<frozen" not in lines


def test_installer_progress_is_not_kept_but_the_install_is_state():
    out = ("Collecting sqlparse\n  Downloading sqlparse-0.4.4-py3-none-any.whl (41 kB)\n"
           "     " + "\u2501" * 12 + " 41.2/41.2 kB 1.2 MB/s eta 0:00:00\n"
           "Installing collected packages: sqlparse\nSuccessfully installed sqlparse-0.4.4\n"
           "WARNING: Running pip as the 'root' user can result in broken permissions")
    raw = [{"role": "user", "content": "task"}, *_bash("c1", "pip install sqlparse", out)]
    view = view_of(parse_messages(raw))
    _, ev = fold(view, span=_span(view, 1, 3), counter=COUNTER, block_tokens=300)
    assert "- bash: pip install sqlparse → Successfully installed sqlparse-0.4.4" in ev.text
    assert "Downloading" not in ev.text and "41.2/41.2" not in ev.text and "root' user" not in ev.text


def test_a_failure_is_closed_when_the_same_program_later_succeeds_and_listed_once_per_call():
    raw = [{"role": "user", "content": "task"},
           *_bash("c1", "python repro.py", "<returncode>1</returncode>\nModuleNotFoundError: No module named 'pytz'"),
           *_bash("c2", "python repro.py",
                  "<returncode>1</returncode>\nModuleNotFoundError: No module named 'sqlparse'"),
           *_bash("c3", "pip install sqlparse pytz", "Successfully installed sqlparse-0.4.4"),
           *_bash("c4", "cd /testbed && python repro.py", "<returncode>0</returncode>\nGROUP BY email")]
    view = view_of(parse_messages(raw))
    _, ev = fold(view, span=_span(view, 1, len(view.items)), counter=COUNTER, block_tokens=400,
                 config=FoldConfig(state_share=0.6))
    state = ev.text.split(LINES_HEAD)[0]
    assert "- bash: python repro.py → ModuleNotFoundError: No module named 'sqlparse'" in state
    assert "'pytz'" not in state  # superseded by the same call's newer failure
    assert "open:" not in state  # `cd /testbed && python repro.py` succeeded: the same program


def test_a_failure_of_another_program_stays_open():
    raw = [{"role": "user", "content": "task"},
           *_bash("c1", "python repro.py", "<returncode>1</returncode>\nValueError: bad port 99999"),
           *_bash("c2", "python other.py", "<returncode>0</returncode>\nok")]
    view = view_of(parse_messages(raw))
    _, ev = fold(view, span=_span(view, 1, len(view.items)), counter=COUNTER, block_tokens=300,
                 config=FoldConfig(state_share=0.6))
    assert "open:\n- bash: python repro.py still failing: ValueError: bad port 99999" in ev.text


def test_what_the_agent_named_keeps_its_weight_after_its_rounds_are_folded():
    """A line whose identifier the agent named in a round folded long ago still wins a later merge: the block
    carries the messages it stands for (`originals`), so referenced_terms sees the whole session, in live and replay."""
    from agentmem.primitives.fold import referenced_terms
    from agentmem.view import apply_event

    listing = "\n".join(f"def helper_{i:02d}_{w}(arg_{i}, opt_{i}):" for i, w in enumerate(
        ["parse", "merge", "split", "render", "load", "dump", "scan", "walk"] * 3))
    listing += "\ndef resolve_alias_target(alias_map, name_ref):"
    raw = [{"role": "user", "content": "fix the alias bug"},
           {"role": "assistant", "content": "The bug must be in resolve_alias_target.", "tool_calls": [
               {"id": "c1", "name": "bash", "arguments": json.dumps({"command": "cat pkg/alias.py"})}]},
           {"role": "tool", "tool_call_id": "c1", "content": listing},
           *_bash("c2", "ls pkg", "alias.py\nnames.py"), *_bash("c3", "ls tests", "test_alias.py")]
    view = view_of(parse_messages(raw))
    first, ev1 = fold(view, span=_span(view, 1, 5), counter=COUNTER, block_tokens=400)
    assert "resolve_alias_target" in referenced_terms(first)  # its turn is folded, the block carries it
    # a merge that must drop most lines: the named one stays
    second, ev2 = fold(first, span=_span(first, 1, len(first.items)), counter=COUNTER, block_tokens=60)
    assert "def resolve_alias_target(alias_map, name_ref):" in ev2.text
    assert "resolve_alias_target" in referenced_terms(second)
    replayed = apply_event(apply_event(view, ev1, COUNTER), ev2, COUNTER)  # the log alone gives the same terms
    assert referenced_terms(replayed) == referenced_terms(second)


def test_a_line_is_worth_what_it_adds_to_the_whole_memory():
    """Identifiers another block already holds count as covered: with room for one line, the block keeps the line
    that names something new, not a second line about what memory already has."""
    known = "pkg/orders.py:41: def settle_invoice(order_ref, ledger_id):"
    raw = [{"role": "user", "content": "task"}, *_bash("c1", "grep -n settle pkg", known),
           *_bash("c2", "grep -n ledger pkg",
                  "pkg/orders.py:88: settle_invoice(order_ref=ord_7, ledger_id=led_2)\n"
                  "pkg/audit.py:12: rotate_journal(archive_dir, retention_days)")]
    view = view_of(parse_messages(raw))
    first, ev1 = fold(view, span=_span(view, 1, 3), counter=COUNTER)
    assert known in ev1.text
    _, ev2 = fold(first, span=_span(first, 2, 4), counter=COUNTER, block_tokens=60,
                  config=FoldConfig(state_share=0.05))
    lines = ev2.text.split(LINES_HEAD)[1]
    assert "rotate_journal(archive_dir, retention_days)" in lines
    assert "settle_invoice(order_ref=ord_7" not in lines


def test_notes_keep_findings_not_the_agent_announcing_its_next_step():
    raw = [{"role": "user", "content": "task"},
           {"role": "assistant", "content": "First, let me look at the http module. So Resolver404 is a subclass of "
                                            "Http404. Great! Now I'll run the tests again.",
            "tool_calls": [{"id": "c1", "name": "bash", "arguments": json.dumps({"command": "ls"})}]},
           {"role": "tool", "tool_call_id": "c1", "content": "urls.py"}]
    view = view_of(parse_messages(raw))
    _, ev = fold(view, span=_span(view, 1, 3), counter=COUNTER, block_tokens=200, config=FoldConfig(state_share=0.6))
    assert "notes:\n- So Resolver404 is a subclass of Http404." in ev.text
    assert "let me look" not in ev.text and "run the tests again" not in ev.text


def test_chained_tracebacks_lose_their_seams_and_headers_not_their_errors():
    from agentmem.salience import output_lines

    text = ("Traceback (most recent call last):\n  File \"/t/a.py\", line 3, in f\n    g()\nKeyError: 'dummy'\n\n"
            "The above exception was the direct cause of the following exception:\n\n"
            "Traceback (most recent call last):\n  File \"/t/run.py\", line 9, in <module>\n    setup()\n"
            "ImproperlyConfigured: 'dummy' isn't an available database backend.")
    lines = output_lines(text)
    assert "KeyError: 'dummy'" in lines and lines[-1].startswith("ImproperlyConfigured: 'dummy'")
    assert 'File "/t/run.py", line 9, in <module>' in lines
    assert not any(ln.startswith(("Traceback", "The above exception")) for ln in lines)


def test_the_tail_of_a_traceback_is_cut_like_a_whole_one():
    """`… 2>&1 | tail -50` keeps the frames without their header: interpreter frames still go, a long run still
    keeps its first and last two frames."""
    from agentmem.salience import output_lines

    frames = "".join(f'  File "/t/pkg/m{i}.py", line {i}, in f{i}\n    f{i + 1}()\n' for i in range(6))
    text = ('  File "<frozen importlib._bootstrap>", line 1204, in _gcd_import\n' + frames +
            "django.http.response.Http404: Value 'invalid' not found")
    lines = output_lines(text)
    assert not any("<frozen" in ln for ln in lines)
    assert [ln for ln in lines if ln.startswith("File")] == [
        'File "/t/pkg/m0.py", line 0, in f0', 'File "/t/pkg/m4.py", line 4, in f4',
        'File "/t/pkg/m5.py", line 5, in f5']
    assert lines[-1] == "django.http.response.Http404: Value 'invalid' not found"


def test_lines_of_an_earlier_run_of_the_same_call_give_way_to_the_newest_run():
    raw = [{"role": "user", "content": "task"},
           *_bash("c1", "python repro.py", "<returncode>1</returncode>\n"
                                           "ModuleNotFoundError: No module named 'pytz_compat.zones_v2'"),
           *_bash("c2", "pip install pytz_compat", "Successfully installed pytz_compat-2024.1"),
           *_bash("c3", "python repro.py", "<returncode>0</returncode>\nGROUP BY email_address, user_id_42")]
    view = view_of(parse_messages(raw))
    _, ev = fold(view, span=_span(view, 1, len(view.items)), counter=COUNTER, block_tokens=300)
    lines = ev.text.split(LINES_HEAD)[1]
    assert "GROUP BY email_address, user_id_42" in lines
    assert "zones_v2" not in lines  # where things stood before the install: not kept as a line


def test_a_call_with_arguments_is_its_own_program():
    """`name(k=v, …)` labels have no command to compare: page 2 succeeding does not close page 1's failure."""
    def call(cid, page, out):
        args = json.dumps({"app": "music", "arguments": {"access_token": "at-music-1", "page_index": page}})
        return [{"role": "assistant", "content": None,
                 "tool_calls": [{"id": cid, "name": "call_api", "arguments": args}]},
                {"role": "tool", "tool_call_id": cid, "content": out}]
    raw = [{"role": "user", "content": "task"}, *call("c1", 1, "<returncode>1</returncode>\nValueError: page 1 broken"),
           *call("c2", 2, "<returncode>0</returncode>\nsong_id=7")]
    view = view_of(parse_messages(raw))
    _, ev = fold(view, span=_span(view, 1, len(view.items)), counter=COUNTER, block_tokens=300,
                 config=FoldConfig(state_share=0.6))
    assert "still failing: ValueError: page 1 broken" in ev.text


def test_a_dispatcher_tool_call_that_changes_something_is_done_state():
    """`call_api(api="send_money", …)`: the operation is an argument, not the tool's name; it is still an effect,
    and a read through the same tool is not."""
    def call(cid, api, out):
        args = json.dumps({"app_name": "payments", "api_name": api, "arguments": {"amount": 116.18}})
        return [{"role": "assistant", "content": None,
                 "tool_calls": [{"id": cid, "name": "call_api", "arguments": args}]},
                {"role": "tool", "tool_call_id": cid, "content": out}]
    raw = [{"role": "user", "content": "pay the bills"},
           *call("c1", "show_bills", '{"status": "ok", "response": [{"bill_id": 7}]}'),
           *call("c2", "send_money", '{"status": "ok", "response": {"transaction_id": 4411}}')]
    view = view_of(parse_messages(raw))
    _, ev = fold(view, span=_span(view, 1, len(view.items)), counter=COUNTER, block_tokens=300,
                 config=FoldConfig(state_share=0.6))
    done = ev.text.split("done:\n", 1)[1].split(LINES_HEAD)[0]
    assert "payments.send_money(amount=116.18) → status=ok" in done and "show_bills" not in done


def test_a_done_entry_reads_past_an_api_echoing_its_request():
    """An API that repeats its request before its response (appworld-lite's envelope): the `done:` entry carries
    the response (the new task's id), not the echo `app=todo, api=create_task, status=ok`."""
    args = json.dumps({"app": "todo", "api": "create_task", "arguments": {"title": "Renew passport"}})
    out = json.dumps({"app": "todo", "api": "create_task", "args": {"title": "Renew passport"}, "status": "ok",
                      "response": {"task_id": 17}})
    raw = [{"role": "user", "content": "add the task"},
           {"role": "assistant", "content": None,
            "tool_calls": [{"id": "c1", "name": "call_api", "arguments": args}]},
           {"role": "tool", "tool_call_id": "c1", "content": out}]
    view = view_of(parse_messages(raw))
    _, ev = fold(view, span=_span(view, 1, len(view.items)), counter=COUNTER, block_tokens=300,
                 config=FoldConfig(state_share=0.6))
    done = ev.text.split("done:\n", 1)[1].split(LINES_HEAD)[0]
    assert 'todo.create_task(title="Renew passport") → response: task_id=17' in done, done


def _fold_one_payment(state_share: float, description: str = "Electricity bill of November, invoice INV-2024-11-0093"):
    """One `send_money` call (with its access token) folded into a 300-token block: the event and its state."""
    args = json.dumps({"app_name": "venmo", "api_name": "send_money", "arguments": {
        "access_token": "at-venmo-5f0c2a9e1b7d", "receiver_email": "kristin.white@example.com", "amount": 116.18,
        "description": description}})
    raw = [{"role": "user", "content": "pay the bills"},
           {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "name": "call_api", "arguments": args}]},
           {"role": "tool", "tool_call_id": "c1", "content": '{"status": "ok", "response": {"transaction_id": 4411}}'}]
    view = view_of(parse_messages(raw))
    _, ev = fold(view, span=_span(view, 1, len(view.items)), counter=COUNTER, block_tokens=300,
                 config=FoldConfig(state_share=state_share))
    return ev, _body(ev.text).split(LINES_HEAD)[0]


def test_a_small_block_keeps_its_newest_effect_cut_to_fit_and_it_says_whom_it_paid():
    """A block whose state section has less room than one whole entry keeps the entry cut to the room (read off
    an appworld-lite view: 110 folded messages with seven payments and no `done:` entry). The entry is compact
    enough that the cut keeps the payee: a real block's ~20 tokens of room held only `call_api(app="payments",
    api="send_money", arguments={"receiver_email": …` in the JSON form of the call."""
    _ev, state = _fold_one_payment(0.15)
    assert COUNTER.text(state) <= 45
    assert 'done:\n- venmo.send_money(receiver_email="kristin.white@example.com"' in state
    assert state.rstrip().endswith("…")


def test_a_state_entry_names_the_operation_with_its_credential_last():
    """A state entry says what a dispatcher call did (`venmo.send_money(…) → outcome`), the access token after the
    other arguments (a cut takes it first; an agent without recall may still need it); the group header keeps the
    call as it was made (an agent reads its token there to go on calling)."""
    ev, state = _fold_one_payment(0.3, description="Electricity")
    assert ('- venmo.send_money(receiver_email="kristin.white@example.com", amount=116.18, description="Electricity", '
            'access_token="at') in state and "call_api" not in state  # the label's 120 characters end in the token
    assert '» call_api(app_name="venmo", api_name="send_money", arguments={"access_token": "at-venmo' in ev.text


def _squeezed_block():
    """Rounds 1-4 of a synthetic history folded into a 120-token block (it keeps one of the four outputs)."""
    view = view_of(parse_messages(synthetic_history(8, output_chars=300)))
    units = view.units()
    view, ev = fold(view, span=_span(view, units[2][0], units[5][1]), counter=COUNTER, block_tokens=120)
    dropped = [f"/data/invoices/{i}_0.json" for i in range(3) if f"/data/invoices/{i}_0.json" not in ev.text]
    assert dropped, "the small block must have left some outputs out"
    return view, view.get(f"blk-{ev.seq}"), dropped


def test_a_merge_with_room_selects_again_from_what_its_blocks_stand_for():
    """A block squeezed small (memory gave way to a large newest round) keeps few lines; merged later with room,
    the merge reads the block's original messages, so the lines it dropped compete again."""
    view, blk, dropped = _squeezed_block()
    nxt = view.units()[3]  # the round after the block
    span = [blk.key] + _span(view, nxt[0], nxt[1])
    _, ev = fold(view, span=span, counter=COUNTER, block_tokens=600)
    assert all(path in ev.text for path in dropped)


def test_a_merge_that_shrinks_the_memory_chooses_among_the_lines_its_blocks_kept():
    """Below `reselect_ratio` of what the blocks hold, the merge picks from the blocks' kept lines (and the new
    rounds), not from every original: a tiny block selected afresh from a whole session is a lottery (an
    appworld-lite task lost its credentials line to an echo of a login's arguments)."""
    view, blk, dropped = _squeezed_block()
    nxt = view.units()[3]
    span = [blk.key] + _span(view, nxt[0], nxt[1])
    size = 300
    _, reread = fold(view, span=span, counter=COUNTER, block_tokens=size)  # 300 >= 0.8 x the block's tokens
    assert any(path in reread.text for path in dropped)
    _, squeezed = fold(view, span=span, counter=COUNTER, block_tokens=size,
                       config=FoldConfig(reselect_ratio=size / blk.tokens + 0.1))
    assert not any(path in squeezed.text for path in dropped)
    assert "/data/invoices/3_0.json" in blk.text and "/data/invoices/3_0.json" in squeezed.text
