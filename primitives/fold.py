"""fold: a span of finished rounds becomes one block; the originals stay in the store, recallable.

Without a model the block is extractive and content-aware (agentmem.salience), for any agent:
- a short **state** section derived from the trajectory: what was done (calls with an effect: edits, writes, API
  calls that change something), what failed (with its error line), what the agent noted, what is still open;
- **lines** from tool outputs in their original wording (JSON as one line per entity with its fields), ranked by
  salience (terms the agent itself referred to, rare terms, locations/definitions/errors/test results, recency),
  grouped under the call that printed them, never repeating a line another block already holds.
Re-folding blocks merges them: their lines compete again by score with the new ones, instead of being summarised a
second time. The block size comes from the action (the policy's allotment for memory) or the config.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from agentmem.salience import Candidate, is_noise, output_lines, select, terms
from agentmem.messages import Message, message_text
from agentmem.tokens import TokenCounter
from agentmem.view import BLOCK_HEADER, BlockItem, Event, Item, MessageItem, StubItem, View, apply_event
from ._common import fit_to_budget, span_items, tool_names

__all__ = ["FoldConfig", "fold", "extractive_summary", "block_header", "parse_body", "referenced_terms", "call_terms",
           "other_block_lines", "STATE_HEAD", "LINES_HEAD"]

STATE_HEAD = "## state (oldest first)"
LINES_HEAD = "## lines kept from tool outputs (original wording, grouped by the call that printed them)"
_GROUP = "» "
_ARG_READ_CHARS = 20000  # a call's argument value is read this far for its terms (a heredoc can be megabytes)
_CATEGORIES = ("done", "failed", "notes", "open")


class FoldConfig(BaseModel):
    """How big a block may be (when the action names no size) and how it is split."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_block_tokens: int = Field(default=500, ge=32, description="Block body size when the action names none.")
    max_values: int = Field(default=200, ge=0, description="Most lines kept from tool outputs (each with the values "
                            "it holds, in context); 0 keeps the state section only.")
    state_share: float = Field(default=0.15, gt=0, le=1, description="Most of the body the state section may use.")
    max_line_chars: int = Field(default=200, ge=40, description="Kept lines longer than this are cut.")
    max_note_chars: int = Field(default=160, ge=40, description="Notes and outcomes in the state are cut to this.")
    reselect_ratio: float = Field(
        default=0.8, ge=0, description="A merge whose block gets at least this share of the tokens its extractive "
        "blocks hold selects again from the messages they stand for: lines a block lost when memory gave way to a "
        "large newest round compete again (SWE@6000: 36 of the 48 old values agents used that had been in a block "
        "and were gone were lost at such a squeeze). A squeeze below it chooses among the lines the blocks kept: "
        "selecting afresh from everything for a tiny block cost an appworld-lite task its credentials (0.8 vs "
        "always: SWE@6000 / held-out values last seen 10+ rounds back 81.4 / 89.7 vs 81.8 / 89.2 %, "
        "appworld-lite hard tasks at 6,000 42 vs 41 of 42).")


def block_header(key: str, kind: str, items: Sequence[Item]) -> str:
    ids = [i for it in items for i in it.message_ids]
    first, last = (ids[0], ids[-1]) if ids else ("-", "-")
    return (f"{BLOCK_HEADER}: {kind} block {key} covers {len(ids)} earlier messages ({first} … {last}); "
            f"call recall_memory with ids=[\"{key}\"] or a query to read the originals]")


# --- reading the span ---------------------------------------------------------------------------------------
_EFFECT_VERBS = frozenset("""create update write edit send book cancel delete remove modify transfer add set post put
    pay submit apply insert move rename save exchange upgrade change reply accept decline approve reset upload
    commit patch replace append install deploy assign close open mark""".split())
_SHELL_EFFECT = re.compile(r"\bsed\s+-i|(?<![0-9&<>])>>?\s*[\w./~\"']|\btee\b|\bmv\s|\bcp\s|\brm\s|\bmkdir\b|"
                           r"\btouch\b|\bgit\s+(?:apply|checkout|commit|stash|reset|am|restore)\b|\bpatch\b|"
                           r"\bpip\s+install\b|open\([^)]*[\"'][wa]\+?[\"']|\.write(?:_text)?\(|<<\s*['\"]?\w+")
_EXIT = re.compile(r"<returncode>\s*([1-9]\d*)\s*</returncode>|\bexit (?:code|status)\s*:?\s*([1-9]\d*)", re.I)
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_FAILED = re.compile(r"^Traceback \(most recent call last\)|^\s*(?:[\w.]+(?:Error|Exception)|FAIL(?:ED)?|fatal|"
                     r"error|ERROR)\b:?|\bNo such file\b|\bcommand not found\b|\bPermission denied\b|"
                     r"\bnot found\b|\b(?:Error|Exception): ")
_TAG = re.compile(r"</?\w+>")
_STATUS = re.compile(r"<returncode>\s*(\d+)\s*</returncode>|\bexit (?:code|status)\s*:?\s*(\d+)", re.I)
_CAPS = {"open": 3, "failed": 6, "done": 10, "notes": 6}
_MIN_CUT_ENTRY = 16  # tokens: an entry is cut to fit only where the cut keeps something readable
# the agent announcing its next step ("First, let me look at…", "Now I'll run…"): the calls that follow say it
_NARRATION = re.compile(r"^(?:(?:first|now|next|then|ok|okay|great|good|perfect|alright|so)\b[,!.]?\s*)*"
                        r"(?:let me|let's|let us|i'll|i will|i'm going to|i am going to)\b")


def _arg_strings(parsed: Any) -> list[str]:
    """A call's argument values as text. `parsed`: see `_parsed_arguments`."""
    if isinstance(parsed, dict):
        return [v if isinstance(v, str) else json.dumps(v, ensure_ascii=False) for v in parsed.values()]
    return [parsed if isinstance(parsed, str) else json.dumps(parsed, ensure_ascii=False)]


# argument keys that hold a credential: a state entry says what a call did and puts them last, where a cut takes
# them first (a `done:` entry cut to fit read `call_api(app="payments", api="send_money", arguments={"access_token":
# …` and lost the payee); they stay when there is room, since an agent may still need its token and a summary
# without the call's group header keeps it nowhere else (leaving them out measured the same on SWE and appworld-lite)
_CREDENTIAL_KEY = re.compile(r"(?i)(?:^|_)(?:access_token|refresh_token|auth_token|token|password|passwd|secret|"
                             r"api_?key|authorization|credentials?|cookie)$")
# argument keys through which a dispatcher tool names the operation it runs (`call_api(api="send_money")`), the
# app or service it runs it on, and the operation's own arguments
_OPERATION_KEYS = frozenset({"api", "api_name", "action", "operation", "op", "method", "function", "endpoint",
                             "tool", "tool_name", "command_name"})
_NAMESPACE_KEYS = frozenset({"app", "app_name", "service", "service_name", "namespace", "server", "server_name"})
_NESTED_ARGUMENT_KEYS = frozenset({"arguments", "args", "params", "parameters", "kwargs"})


def _parsed_arguments(arguments: str) -> Any:
    """A call's arguments as JSON, or the raw string when they are not JSON."""
    try:
        return json.loads(arguments or "{}")
    except json.JSONDecodeError:
        return arguments


def _credentials_last(value: Any) -> Any:
    """`value` with, in each object at any depth, the credential keys moved after the others (which keep their
    order)."""
    if isinstance(value, dict):
        keys = sorted(value, key=lambda k: bool(_CREDENTIAL_KEY.search(str(k))))  # stable: the rest keep their order
        return {k: _credentials_last(value[k]) for k in keys}
    if isinstance(value, list):
        return [_credentials_last(v) for v in value]
    return value


def _naming_keys(parsed: dict, keys: frozenset[str]) -> list[str]:
    """The keys of `parsed` among `keys` (any case) whose values are names: short, non-empty strings."""
    return [k for k in parsed if k.lower() in keys and isinstance(parsed[k], str) and 0 < len(parsed[k]) < 80]


def _operation(parsed: dict) -> tuple[str, set[str]] | None:
    """The operation a dispatcher call names (`payments.send_money`) and the keys that name it, or None for a call
    that names none."""
    operations = _naming_keys(parsed, _OPERATION_KEYS)
    if not operations:
        return None
    keys = _naming_keys(parsed, _NAMESPACE_KEYS) + operations[:1]
    return ".".join(parsed[k] for k in keys), set(keys)


def _call_label(name: str, parsed: Any, max_chars: int = 140) -> str:
    """`name: the command` for a single string argument, else `name(k=v, …)`, in the call's own order (a group
    header: an agent reads its token there to go on calling); one line, cut. `parsed`: see `_parsed_arguments`."""
    if isinstance(parsed, dict) and len(parsed) == 1 and isinstance(next(iter(parsed.values())), str):
        text = f"{name}: " + " ".join(next(iter(parsed.values())).split())
    elif isinstance(parsed, dict):
        return _keyword_label(name, parsed, max_chars)
    else:
        text = f"{name}({' '.join(str(parsed).split())})"
    return text if len(text) <= max_chars else text[: max_chars - 1] + "…"


def _keyword_label(name: str, arguments: dict, max_chars: int) -> str:
    """`name(k=v, …)`, values as JSON; one line, cut."""
    text = f"{name}(" + ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in arguments.items()) + ")"
    return text if len(text) <= max_chars else text[: max_chars - 1] + "…"


def _entry_label(name: str, parsed: Any, max_chars: int = 140) -> str:
    """A state entry's label, compact because entries are cut to the room left: a dispatcher call is named by its
    operation, with the operation's own arguments (`payments.send_money(receiver_email="…", amount=12.5)` for
    `call_api(app="payments", api="send_money", arguments={…})`), and credentials come last."""
    if not isinstance(parsed, dict):
        return _call_label(name, parsed, max_chars)
    named = _operation(parsed)
    if named is None:
        return _call_label(name, _credentials_last(parsed), max_chars)
    operation, naming_keys = named
    flat: dict[str, Any] = {}
    for k, v in parsed.items():
        if k in naming_keys:
            continue
        if k.lower() in _NESTED_ARGUMENT_KEYS and isinstance(v, dict):
            flat.update(v)
        else:
            flat[k] = v
    return _keyword_label(operation, _credentials_last(flat), max_chars)


_FAILED_SEP = " → "
_CD_PREFIX = re.compile(r"^(?:cd\s+\S+\s*(?:&&|;)\s*|\w+=\S+\s+)+")


def _program(label: str) -> str:
    """What a call ran, for telling whether a later success answers an earlier failure: the tool name and the
    first two words of its command, without a leading `cd DIR &&` or `VAR=value` (`bash: python repro.py`).
    An open failure is closed when the same program later succeeds, not only the byte-identical call. Only the
    `name: command` form of `_call_label` has a command; a `name(k=v, …)` label is its own program (the first
    ": " there is inside its arguments)."""
    name, sep, command = label.partition(": ")
    if not sep or "(" in name:
        return label
    return name + ": " + " ".join(_CD_PREFIX.sub("", command).split()[:2])


def _latest_per_call(entries: list[tuple[float, str]]) -> list[tuple[float, str]]:
    """`failed:` keeps one entry per call, its newest: a call that failed three times with three different
    errors (a missing module, then the next one) is one fact, where it stands now, not three."""
    newest: dict[str, tuple[float, str]] = {}
    for order, text in entries:
        label = text.split(_FAILED_SEP, 1)[0]
        if label not in newest or order >= newest[label][0]:
            newest[label] = (order, text)
    return sorted(newest.values())


def _has_effect(name: str, parsed: Any) -> bool:
    """Whether a call changes something: its tool name says so, or (for a dispatcher tool) the operation it names,
    or its shell command writes. `parsed`: see `_parsed_arguments`."""
    names = [name]
    if isinstance(parsed, dict):
        names += [parsed[k] for k in _naming_keys(parsed, _OPERATION_KEYS)]
    if any(set(re.split(r"[^a-z]+", n.lower())) & _EFFECT_VERBS for n in names):
        return True
    return any(_SHELL_EFFECT.search(s) for s in _arg_strings(parsed) if len(s) < 20000)


def _cut(text: str, n: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def _failure(text: str) -> str | None:
    """The line that says an output failed (an error line, or a non-zero exit code), else None."""
    lines = [ln for ln in (" ".join(r.split()) for r in text.splitlines()) if ln and not is_noise(ln)]
    status = _STATUS.search(text)
    if status and int(status.group(1) or status.group(2)) == 0:
        return None  # the tool says it succeeded: an "Error" in the code it printed is not a failure
    errors = [ln for ln in lines if _FAILED.search(ln) and not ln.startswith("Traceback")]
    if errors:
        return errors[-1]  # a traceback ends with the message that names the problem
    m = _EXIT.search(text)
    if m:
        rest = [ln for ln in lines if not _EXIT.search(ln)]
        return f"exit code {m.group(1) or m.group(2)}" + (f": {rest[-1]}" if rest else " (no output)")
    return None


def _outcome(lines: Sequence[str], arguments: str) -> str | None:
    """What a call with an effect answered, for its `done:` entry: its first output line with words that is not an
    echo of the request (at least half of its terms in the call's arguments). An API that repeats its request
    before its response (`app=todo, api=create_task, status=ok`, `args: title=…`, then `response: task_id=17`)
    is read past the echo to the new id; a shell command's first line is its answer and stays first."""
    said = terms(arguments[:_ARG_READ_CHARS])
    worded = [ln for ln in lines if re.search(r"[A-Za-z]", _TAG.sub("", ln))]
    for line in worded:
        found = terms(line)
        if not found or 2 * len(found & said) < len(found):
            return line
    return worded[0] if worded else None


def _notes(content: str, max_chars: int) -> list[str]:
    """The sentences of an agent's text that state something (not its narration of the next step)."""
    out = []
    for sent in _SENTENCE.split(" ".join(content.split())):
        low = sent.lower()
        if len(sent) < 20 or _NARRATION.match(low):
            continue
        out.append(_cut(sent, max_chars))
    return out[:2]


def _parse_block(text: str) -> tuple[dict[str, list[str]], list[tuple[str | None, list[str]]]]:
    """parse_body of a block's text (its first line is the header)."""
    return parse_body(text.split("\n", 1)[1] if "\n" in text else "")


def parse_body(body: str) -> tuple[dict[str, list[str]], list[tuple[str | None, list[str]]]]:
    """State entries by category and (group header, lines) of a block body in this fold's structure; a body of
    any other shape (a thinker's free notes) yields its lines as one headerless group."""
    state: dict[str, list[str]] = {c: [] for c in _CATEGORIES}
    groups: list[tuple[str | None, list[str]]] = []
    if STATE_HEAD not in body and LINES_HEAD not in body:
        kept = [ln for ln in body.splitlines() if ln.strip()]
        return state, ([(None, kept)] if kept else [])
    section, category = "", ""
    for line in body.splitlines():
        if line == STATE_HEAD:
            section = "state"
        elif line == LINES_HEAD:
            section = "lines"
        elif section == "state":
            if line.endswith(":") and line[:-1] in state:
                category = line[:-1]
            elif line.startswith("- ") and category:
                state[category].append(line[2:])
        elif section == "lines" and line.strip():
            if line.startswith(_GROUP):
                groups.append((line[len(_GROUP):], []))
            elif groups:
                groups[-1][1].append(line)
            else:
                groups.append((None, [line]))
    return state, groups


def _session_messages(view: View) -> Iterable[Message]:
    """Every message of the session the view stands for: raw, stubbed, and those its blocks cover."""
    for it in view.items:
        if isinstance(it, BlockItem):
            yield from it.originals
        elif isinstance(it, (MessageItem, StubItem)):
            yield it.message


def referenced_terms(view: View) -> set[str]:
    """Terms the agent wrote itself (its text and call arguments) in the whole session: its turns still raw in the
    view and those its blocks stand for (`BlockItem.originals`).

    What the agent once named is the best evidence of what it will use again, also long after those rounds were
    folded: 57 % of the values SWE agents used 10+ rounds after last seeing them, they had named before. Counting
    only the turns still raw let a block's lines lose that weight at the next merge (SWE@6000 values last seen
    10+ rounds back: 71.9 % with the view's turns only, 74.3 % with the whole session's; held-out 81.0 -> 82.3 %)."""
    out: set[str] = set()
    for msg in _session_messages(view):
        if msg.role == "assistant":
            out |= _message_terms(msg)
    return out


def call_terms(arguments: str) -> set[str]:
    """The terms of one call's argument values (JSON or plain text), each value read to its first
    `_ARG_READ_CHARS` characters: what the agent named in that call."""
    found: set[str] = set()
    for value in _arg_strings(_parsed_arguments(arguments)):
        found |= terms(value[:_ARG_READ_CHARS])
    return found


def _message_terms(msg: Message) -> frozenset[str]:
    """The terms of one agent message (its text and call arguments), computed once per message object."""
    cached = _TERMS_CACHE.get(id(msg))
    if cached is not None and cached[0] is msg:
        return cached[1]
    found: set[str] = set()
    if isinstance(msg.content, str):
        found |= terms(msg.content)
    for tc in msg.tool_calls:
        found |= call_terms(tc.arguments)
    result = frozenset(found)
    if len(_TERMS_CACHE) >= 4096:  # a few sessions' agent turns; cleared, not grown (it holds the messages)
        _TERMS_CACHE.clear()
    _TERMS_CACHE[id(msg)] = (msg, result)
    return result


# id(message) -> (message, its terms): the message is held, so its id cannot be reused while the entry exists
_TERMS_CACHE: dict[int, tuple[Message, frozenset[str]]] = {}


def other_block_lines(view: View, span: Sequence[str]) -> set[str]:
    inside = set(span)
    out: set[str] = set()
    for it in view.items:
        if isinstance(it, BlockItem) and it.key not in inside:
            _state, groups = _parse_block(it.text)
            for _h, lines in groups:
                out.update(lines)
    return out


def extractive_summary(items: Sequence[Item], names: dict[str, str], config: FoldConfig,
                       counter: TokenCounter, *, budget: int | None = None, referenced: Iterable[str] | None = None,
                       elsewhere: Iterable[str] = ()) -> list[str]:
    """The block body within `budget` tokens: the state section, then the best lines by salience.

    Args:
        referenced: terms the agent referred to (default: those in the span's own assistant messages).
        elsewhere: lines other blocks already hold (never repeated).
    """
    budget = config.max_block_tokens if budget is None else budget
    names = dict(names)
    refs = set(referenced) if referenced is not None else set()
    state: dict[str, list[tuple[float, str]]] = {c: [] for c in _CATEGORIES}
    headers: list[str | None] = []
    candidates: list[Candidate] = []
    # tool_call_id -> (header label, state label, has effect, raw arguments)
    calls: dict[str, tuple[str, str, bool, str]] = {}
    last_failed: dict[str, str] = {}
    held = sum(it.tokens for it in items if isinstance(it, BlockItem) and it.kind == "fold")
    reading = _span_entries(items, originals=budget >= held * config.reselect_ratio)
    n = max(1, len(reading))
    skip = set(elsewhere)
    for idx, it in enumerate(reading):
        order = idx / n
        if isinstance(it, BlockItem):
            old_state, groups = _parse_block(it.text)
            for cat, entries in old_state.items():
                if cat != "open":  # an older block's open items are superseded by what followed
                    state[cat].extend((order, e) for e in entries)
            for header, lines in groups:
                headers.append(header)
                g = len(headers) - 1
                for k, line in enumerate(lines):
                    if line not in skip:
                        candidates.append(Candidate(line, g, order + k * 1e-6, counter.text(line + "\n")))
            continue
        msg = it if isinstance(it, Message) else getattr(it, "message", None)
        if msg is None:  # a recalled snippet folded again: its sources are still in the archive
            continue
        if msg.role == "assistant":
            if referenced is None:
                refs |= _message_terms(msg)
            for tc in msg.tool_calls:
                names[tc.id] = tc.name
                parsed = _parsed_arguments(tc.arguments)
                calls[tc.id] = (_call_label(tc.name, parsed), _entry_label(tc.name, parsed),
                                _has_effect(tc.name, parsed), tc.arguments)
            if isinstance(msg.content, str) and msg.content.strip():
                state["notes"].extend((order, s) for s in _notes(msg.content, config.max_note_chars))
        elif msg.role == "tool":
            text = message_text(msg)  # a stub's too: it still carries its original
            fallback = names.get(msg.tool_call_id or "", msg.name or "tool")
            label, entry_label, effect, arguments = calls.get(msg.tool_call_id or "", (fallback, fallback, False, ""))
            failure = _failure(text)
            if failure:
                entry = f"{_cut(entry_label, 100)}{_FAILED_SEP}{_cut(failure, config.max_note_chars)}"
                state["failed"].append((order, entry))
                last_failed[entry_label] = failure
            else:
                program = _program(entry_label)
                for key in [k for k in last_failed if k == entry_label or _program(k) == program]:
                    del last_failed[key]
                if effect:
                    outcome = _outcome(output_lines(text, max_chars=config.max_note_chars), arguments) or \
                        ("ok" if text.strip() else "(no output)")
                    state["done"].append((order, f"{_cut(entry_label, 120)} → {_cut(outcome, 80)}"))
            headers.append(label)
            g = len(headers) - 1
            lines = output_lines(text, max_chars=config.max_line_chars)
            for k, line in enumerate(lines):
                if line not in skip:
                    candidates.append(Candidate(line, g, order + k * 1e-6, counter.text(line + "\n")))
        elif msg.role == "user":
            text = " ".join(message_text(msg).split())
            if text:
                state["notes"].append((order, "user: " + _cut(text, config.max_note_chars)))
    for label, failure in last_failed.items():
        state["open"].append((1.0, f"{_cut(label, 100)} still failing: {_cut(failure, 100)}"))
    state["failed"] = _latest_per_call(state["failed"])
    state_lines = _state_section(state, int(budget * config.state_share), counter)
    used = counter.text("\n".join(state_lines) + "\n") if state_lines else 0
    known = set().union(*(terms(ln) for ln in skip)) if skip else set()  # what other blocks hold
    candidates = _newest_run_only(candidates, headers)
    line_section = _line_section(candidates, headers, refs, budget - used, counter, config.max_values, known)
    return fit_to_budget(state_lines + line_section, budget, counter)


def _span_entries(items: Sequence[Item], *, originals: bool) -> list[Item | Message]:
    """The span as the fold reads it: its messages, and its blocks either as the lines they kept or, with
    `originals`, as the messages an extractive block stands for, so a merge selects again from those rather than
    summarising a summary. A thinking block is always read as the model wrote it (its originals would lose what
    the model said)."""
    out: list[Item | Message] = []
    for it in items:
        if originals and isinstance(it, BlockItem) and it.kind == "fold" and it.originals:
            out.extend(it.originals)
        elif isinstance(it, MessageItem | StubItem):
            out.append(it.message)
        else:
            out.append(it)
    return out


def _newest_run_only(candidates: list[Candidate], headers: Sequence[str | None]) -> list[Candidate]:
    """Lines of a call that was run again later in the span are not kept: the newest run's output is where things
    stand (`python repro.py` failing on a missing module, then on the bug, then passing is one state, not three)."""
    newest: dict[str, int] = {}
    for group, header in enumerate(headers):
        if header is not None:
            newest[header] = group
    return [c for c in candidates if headers[c.group] is None or newest[headers[c.group]] == c.group]


def _state_section(state: dict[str, list[tuple[float, str]]], budget: int, counter: TokenCounter) -> list[str]:
    """Newest entries first until the budget is spent, rendered oldest first per category."""
    entries = [(order, cat, text) for cat in _CATEGORIES for order, text in dict.fromkeys(state[cat])]
    if not entries or budget < 16:
        return []
    seen: set[str] = set()
    chosen: list[tuple[float, str, str]] = []
    used = counter.text(STATE_HEAD + "\n") + 4 * len(_CATEGORIES)
    priority = {"open": 0, "failed": 1, "done": 2, "notes": 3}
    taken = dict.fromkeys(_CATEGORIES, 0)
    for order, cat, text in sorted(entries, key=lambda e: (priority[e[1]], -e[0])):
        if text in seen or taken[cat] >= _CAPS[cat]:
            continue
        taken[cat] += 1
        cost = counter.text("- " + text + "\n")
        if used + cost > budget:
            # a small block keeps its most important entry cut to the room left rather than no entry at all (an
            # appworld-lite block of ~430 tokens had 64 for its state, and one `call_api(...)` entry needs ~60).
            # The cut entry is counted as the whole room, so nothing squeezes in after it; a category's first entry
            # leaves 2 tokens more. Those margins are tuned, not derived: cutting to the exact count instead moved
            # appworld-lite at 4,000 from 83.3 to 80.6 % (music_purge_genre-0 fell into a recall cycle), SWE +-0.3.
            room = budget - used - (0 if any(e[1] == cat for e in chosen) else 2)
            short = counter.cut(text, room - 4) if room >= _MIN_CUT_ENTRY else ""
            if not short:
                continue
            text, cost = short + " …", room
        seen.add(text)
        used += cost
        chosen.append((order, cat, text))
    out = [STATE_HEAD]
    for cat in _CATEGORIES:
        picked = sorted((e for e in chosen if e[1] == cat), key=lambda e: e[0])
        if picked:
            out.append(cat + ":")
            out.extend("- " + text for _o, _c, text in picked)
    return out if len(out) > 1 else []


def _line_section(candidates: Sequence[Candidate], headers: Sequence[str | None], refs: set[str], budget: int,
                  counter: TokenCounter, max_lines: int, known: set[str] = frozenset()) -> list[str]:
    """The lines `salience.select` keeps (a group's header is paid for by its first line), in original order."""
    if not candidates or budget < 24 or max_lines <= 0:
        return []
    header_cost: dict[int, int] = {}

    def extra(group: int, opened: set[int]) -> int:
        if group in opened or headers[group] is None:
            return 0
        if group not in header_cost:
            header_cost[group] = counter.text(_GROUP + str(headers[group]) + "\n")
        return header_cost[group]

    chosen = select(candidates, refs, budget - counter.text(LINES_HEAD + "\n"), extra, known)[:max_lines]
    out = [LINES_HEAD]
    current = -1
    for c in sorted(chosen, key=lambda c: (c.group, c.order)):
        if c.group != current:
            current = c.group
            if headers[c.group] is not None:
                out.append(_GROUP + str(headers[c.group]))
        out.append(c.text)
    return out if len(out) > 1 else []


def fold(view: View, *, span: Sequence[str], counter: TokenCounter, config: FoldConfig = FoldConfig(),
         text: str | None = None, kind: str = "fold", meta: dict[str, Any] | None = None,
         block_tokens: int | None = None) -> tuple[View, Event]:
    """Replace the units named by `span` (item keys) with one block. Pure: `view` is not changed.

    Args:
        text: the block body from a thinker; None for the extractive block.
        kind: "fold", or "summarize" when called by summarize_by_thinking.
        block_tokens: the body's size (the policy's allotment); default `config.max_block_tokens`.
    """
    items = span_items(view, span)
    key = f"blk-{view.next_seq}"
    header = block_header(key, kind, items)
    budget = block_tokens or config.max_block_tokens
    if text is None:
        body = extractive_summary(items, tool_names(view), config, counter, budget=budget,
                                  referenced=referenced_terms(view), elsewhere=other_block_lines(view, span))
    else:
        body = fit_to_budget(text.strip().splitlines(), budget, counter)
    block_text = header + ("\n" + "\n".join(body) if body else "")
    span_tokens = sum(it.tokens for it in items)
    ev_meta = {"span_tokens": span_tokens, "extractive": text is None, **(meta or {})}
    event = Event(seq=view.next_seq, kind=kind, covers=tuple(it.key for it in items), text=block_text,
                  after_message=view.message_count, meta=ev_meta)
    new = apply_event(view, event, counter)
    block = new.get(key)
    ratio = round(span_tokens / block.tokens, 2) if block and block.tokens else None
    event = event.model_copy(update={"meta": {**ev_meta, "block_tokens": block.tokens if block else 0,
                                              "compression_ratio": ratio}})
    return new, event
