"""Archive access: what `recall` finds in a session's store, exact look-ups first, and every answer pageable.

A query is read the way an agent writes one:

* **ids** - message ids and block keys (a block expands to every message it covers, in order);
* **a call with its arguments** - ``show_playlist_songs playlist_id 17 page_index 1`` finds the rounds whose tool
  call (or echoed result) has that name and those argument values; naming fewer arguments finds every such call
  (``show_playlist_songs playlist_id 17``: all its pages), in session order, so the newest reading comes last;
* **quoted phrases** and **identifier-like values** (``"Total: $41.20"``, ``inv_63.pdf``, ``at-music-…``) -
  messages that contain them exactly;
* then full-text search (bm25 / ts_rank) for the rest of the words.

Exact matches are ranked before full-text hits. Every hit comes with the rest of its round (a call with its
result). Nothing is cut silently: `recall_page` splits the answer into pages and says how much more there is
and how to ask for it ("N more …: call recall_memory again with the same arguments and page=2").
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from agentmem.messages import Message, group_rounds
from agentmem.primitives.recall import page_archive
from agentmem.store import SearchHit, Store
from agentmem.tokens import TokenCounter
from agentmem.values import extract_values
from agentmem.view import BlockItem, MessageItem, RecalledItem, View

__all__ = ["ArchiveQuery", "parse_query", "find_archived", "rounds_of", "recall_text", "RECALL_TOOL_NAME"]

RECALL_TOOL_NAME = "recall_memory"
_QUOTED = re.compile(r'"([^"]{2,})"|\'([^\']{2,})\'')
_WORD = re.compile(r"[^\s,;:=(){}\[\]\"']+")
_CALL_NAME = re.compile(r"^[A-Za-z]+(?:[_.][A-Za-z]+)+$")
_FIRST_NAME = re.compile(r"^[A-Za-z]+(?:[_.][A-Za-z]+)*$")  # show_playlist_songs, music.like_song


class ArchiveQuery:
    """A recall query split into what can be matched exactly and the words left for full-text search."""

    def __init__(self, query: str):
        self.query = query or ""
        self.phrases = [a or b for a, b in _QUOTED.findall(self.query)]
        rest = _QUOTED.sub(" ", self.query)
        self.words = [w.strip(".") for w in _WORD.findall(rest) if w.strip(".")]
        # the first word may name a call ("login username …"); later, a name-like word followed by a value is an
        # argument name ("playlist_id 17"), otherwise a call name
        self.call_names = [w for i, w in enumerate(self.words) if (i == 0 and _FIRST_NAME.match(w)) or (
            _CALL_NAME.match(w) and (i + 1 == len(self.words) or _CALL_NAME.match(self.words[i + 1])))]
        self.values = [v for v in extract_values(rest) if v not in self.call_names]


def _flat_args(obj: Any) -> dict[str, str]:
    """Argument name -> value as text (nested objects flattened one level: "arguments" of call_api)."""
    out: dict[str, str] = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(v, dict):
                out.update(_flat_args(v))
            elif isinstance(v, (str, int, float, bool)) or v is None:
                out[str(k).lower()] = str(v).lower() if not isinstance(v, bool) else str(v).lower()
    return out


def _calls_of(m: Message) -> list[tuple[set[str], dict[str, str]]]:
    """(names, arguments) of each call a message makes or answers: a tool call, or a result that echoes its call."""
    out = []
    for tc in m.tool_calls:
        try:
            args = json.loads(tc.arguments or "{}")
        except json.JSONDecodeError:
            args = {}
        flat = _flat_args(args)
        names = {tc.name.lower()} | {flat[k] for k in ("app", "api", "name", "tool") if k in flat}
        out.append((names, flat))
    if m.role == "tool" and isinstance(m.content, str) and m.content.lstrip().startswith("{"):
        try:
            env = json.loads(m.content)
        except json.JSONDecodeError:
            env = None
        if isinstance(env, dict):
            names = {str(env[k]).lower() for k in ("app", "api", "name", "tool") if isinstance(env.get(k), str)}
            if names:
                out.append((names, _flat_args(env.get("args") or env.get("arguments") or {})))
    return out


def _call_match(q: ArchiveQuery, names: set[str], args: dict[str, str]) -> int | None:
    """None when the query does not name this call or gives another value for one of its arguments; else how
    many of the call's arguments the query left unnamed (0: the query names exactly this call)."""
    wanted = [n.lower() for n in q.call_names]
    if not any(n in names or n.split(".")[-1] in names for n in wanted):
        return None
    text = " " + _norm(q.query) + " "  # words only: "text Happy birthday, Wanda!" matches its argument
    unnamed = 0
    for key, value in args.items():
        if key in names or key in ("app", "api", "access_token", "password"):
            continue
        at = text.find(f" {key} ")
        if at < 0:
            unnamed += 1
            continue
        given, value = text[at + len(key) + 2:], _norm(value) + " "
        rest = given[len(value):].split()
        # the value must be the whole of what follows the key: up to the next argument name or the end
        if not given.startswith(value) or (rest and rest[0] not in args and rest[0] not in names):
            return None
    return unnamed


def _norm(s: str) -> str:
    return " ".join(re.findall(r"\w+", s.lower()))


def _exact_hits(store: Store, session_id: str, q: ArchiveQuery) -> tuple[list[SearchHit], list[SearchHit]]:
    """(call hits, phrase and value hits): calls come with their round; a phrase found in an assistant message
    (a note the agent wrote) is the answer itself."""
    calls = _call_hits(store, session_id, q)
    seen = {h.message_id for h in calls}
    texts: list[SearchHit] = []
    for needle in [*q.phrases, *q.values]:
        for h in store.find_text(session_id, [needle]):
            if h.message_id not in seen:
                seen.add(h.message_id)
                texts.append(h)
    return calls, texts


def _call_hits(store: Store, session_id: str, q: ArchiveQuery) -> list[SearchHit]:
    hits: list[SearchHit] = []
    seen: set[str] = set()

    def add(hs: Sequence[SearchHit]) -> None:
        for h in hs:
            if h.message_id not in seen:
                seen.add(h.message_id)
                hits.append(h)

    for name in q.call_names:
        cands = store.find_text(session_id, [name.split(".")[-1]])
        by_id = {m.message.id: m.message for m in store.get_messages(session_id, [c.message_id for c in cands])}
        scored = []
        for c in cands:
            scores = [sc for n, a in _calls_of(by_id[c.message_id]) if (sc := _call_match(q, n, a)) is not None] \
                if c.message_id in by_id else []
            if scores:
                scored.append((min(scores), c.seq, c))
        add([c for _, _, c in sorted(scored, key=lambda t: (t[0], t[1]))])  # exactly this call first, oldest first
    return hits


def find_archived(store: Store, session_id: str, view: View, *, ids: Sequence[str] = (), query: str | None = None,
                  limit: int = 6) -> list[Message]:
    """Archived messages by id (block keys expand to what they cover) and by query, exact matches first.

    A query skips messages the view already shows in full, so recall brings back what was actually lost.
    `limit` caps the full-text hits (each with its round); exact matches are all returned (the answer pages).
    """
    wanted: list[str] = []
    blocks = {it.key: it for it in view.items if isinstance(it, BlockItem)}
    for i in ids:
        if i in blocks:
            wanted.extend(blocks[i].covers)
        else:
            wanted.append(i)
    found = [s.message for s in store.get_messages(session_id, wanted)] if wanted else []
    if wanted and len(wanted) > len(found):  # block keys of blocks folded again, recalled snippets' keys
        found = _ordered(found, wanted)
    if not query:
        return found
    visible = {it.key for it in view.items if isinstance(it, MessageItem)}
    visible |= {src for it in view.items if isinstance(it, RecalledItem) for src in it.sources}
    q = ArchiveQuery(query)
    calls, texts = _exact_hits(store, session_id, q)
    calls = [h for h in calls if h.message_id not in visible]
    # the agent's own notes found by a phrase are returned even when the view shows them now: they are short, and
    # a fold may take them out of the view before the agent reads this answer (its other pages would miss them)
    # full-text hits only where nothing matched exactly: exact answers stay short (and page less)
    fts = [] if calls or texts else store.search(session_id, query, limit=limit * 4, exclude=visible)
    have = {m.id for m in found}
    exact_msgs = [_call_only(m) for m in rounds_of(store, session_id, calls, limit=len(calls))] if calls else []
    notes = [h for h in texts if h.role == "assistant"]
    if notes:  # the agent's own notes; not its recall calls, whose queries repeat the phrase
        needles = [n.lower() for n in [*q.phrases, *q.values]]
        exact_msgs += [_note_only(s.message, needles) for s in store.get_messages(session_id, [h.message_id for h in notes])
                       if any(n in _own_words(s.message) for n in needles)]
    others = [h for h in texts if h.role != "assistant"]
    if others:
        exact_msgs += rounds_of(store, session_id, others, limit=len(others))
    note_ids = {h.message_id for h in texts if h.role == "assistant"}
    found.extend(m for m in exact_msgs if m.id not in have and (m.id not in visible or m.id in note_ids))
    have = {m.id for m in found}
    found.extend(m for m in rounds_of(store, session_id, fts, limit=limit) if m.id not in have and m.id not in visible)
    return found


def _own_words(m: Message) -> str:
    """A message's text without what it quotes from its own recall calls (a note, not a question about one)."""
    text = (m.content if isinstance(m.content, str) else "").lower()
    for tc in m.tool_calls:
        if tc.name == RECALL_TOOL_NAME:
            try:
                asked = json.loads(tc.arguments or "{}").get("query")
            except (json.JSONDecodeError, AttributeError):
                asked = None
            if isinstance(asked, str) and asked:
                text = text.replace(asked.lower(), " ")
    return text


def _note_only(m: Message, needles: Sequence[str]) -> Message:
    """A note the agent wrote, as the answer to a phrase look-up: from the first match on ("…" marks the text
    left out before it), its calls named ("[+name]") but left out. The message id recalls all of it."""
    text = m.content if isinstance(m.content, str) else ""
    low = text.lower()
    at = min((i for i in (low.find(n.lower()) for n in needles) if i >= 0), default=0)
    if at > 0:
        text = "… " + text[at:]
    calls = ",".join(tc.name for tc in m.tool_calls)
    return m.model_copy(update={"tool_calls": (), "content": text + (f" [+{calls}]" if calls else "")})


def _call_only(m: Message) -> Message:
    """A call found by its name and arguments, as the answer to a call look-up: the call and its result, the text
    the agent wrote beside the call left out ("…"; the message id recalls all of it). That text is the agent's
    thought at the time, not what was asked, and it doubled the size of every call answer."""
    if m.role != "assistant" or not m.tool_calls or not (isinstance(m.content, str) and m.content.strip()):
        return m
    return m.model_copy(update={"content": "…"})


def _ordered(found: list[Message], wanted: Sequence[str]) -> list[Message]:
    pos = {w: i for i, w in enumerate(wanted)}
    return sorted(found, key=lambda m: pos.get(m.id, len(pos)))


def rounds_of(store: Store, session_id: str, hits: Sequence[SearchHit], *, limit: int,
              reach: int = 16) -> list[Message]:
    """Each hit with the rest of its round (a call with its results, a result with its call), best hit first.

    A tool result alone lacks what was asked, and a call alone lacks the answer; short call messages also outrank
    long results in bm25, so returning whole rounds is what makes a query find the data. Rounds of the recall tool
    itself hold copies of the archive: returning them would nest recalls, so they are skipped.
    """
    if not hits:
        return []
    window = {q for h in hits for q in range(max(1, h.seq - reach), h.seq + reach + 1)}
    near = [s.message for s in store.get_by_seqs(session_id, window)]
    round_of: dict[str, tuple[str, ...]] = {}
    for rnd in group_rounds(near):
        for mid in rnd.ids:
            round_of[mid] = rnd.ids
    by_id = {m.id: m for m in near}
    recall_rounds = {mid for m in near if m.role == "assistant" and m.tool_calls
                     and all(tc.name == RECALL_TOOL_NAME for tc in m.tool_calls) for mid in round_of[m.id]}
    out: list[Message] = []
    seen: set[str] = set()
    rounds_taken = 0
    for h in hits:
        if h.message_id in recall_rounds or h.message_id in seen:
            continue
        if rounds_taken == limit:
            break
        rounds_taken += 1
        for mid in round_of.get(h.message_id, (h.message_id,)):
            if mid in by_id and mid not in seen:
                seen.add(mid)
                out.append(by_id[mid])
    return out


def recall_text(store: Store, session_id: str, view: View, *, counter: TokenCounter, ids: Sequence[str] = (),
                query: str | None = None, page: int = 1, page_tokens: int = 1200, limit: int = 4) -> str:
    """The answer to the agent's own recall_memory call: one page of what was found, with a note of the rest."""
    found = find_archived(store, session_id, view, ids=ids, query=query, limit=limit)
    what = " and ".join(p for p in ((f"ids {list(ids)}" if ids else ""), (f"query {query!r}" if query else "")) if p)
    if not found:
        return f"[agentmem: nothing in the archive matches {what}]"
    # the key to "…" and "[+name]" only when the answer has such a note: a heading on every answer costs the
    # view ~35 tokens per recall round it keeps
    excerpts = any(isinstance(m.content, str) and (m.content.startswith("…") or m.content.endswith("]") and
                                                   " [+" in m.content) for m in found)
    key = "; … = text left out, [+name] = a call left out: recall the id for all of it" if excerpts else ""
    return page_archive(found, counter=counter, page_tokens=page_tokens, page=page,
                        heading=f"[agentmem: recalled archived messages for {what}, exact matches first{key}]")
