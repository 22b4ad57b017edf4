"""ScriptedAgent: a deterministic agent that knows each task's plan but reads every value from its view.

The agent is *stateless between calls*. On every call it parses the managed view it is given:

* its own progress marker (``[plan] {...}``) in its latest assistant message: stage index, loop index or
  page number (plus a short hash of the current loop item), and which lookups it recalled without success -
  control information only, never a value read from an observation;
* every API observation it can find - tool messages, and JSON envelopes embedded in any text (fold blocks,
  recall results) - indexed by (app, api, args);
* access tokens and passwords by pattern anywhere (including its own earlier tool-call arguments);
* its own loop notes: when a loop starts, the agent writes the list it will walk once into that message
  (``NOTE s5 = [...]``, like an LLM writing down its plan). The note is part of the transcript and subject to
  memory management like everything else.

When a value it needs is not in the view it calls ``recall_memory`` (``{"query": ...}``) once for it; if the
recall does not bring it back it carries on with what it has (credentials are fetched again; a lost loop
list is derived again from whatever observations remain; other data is skipped), and the evaluator scores
the outcome. A value that came back and is lost again later may be recalled again. After
MAX_RECALLS_IN_A_ROW recalls without an action, every miss takes its default (no livelock).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

__all__ = [
    "Act",
    "C",
    "Skip",
    "Complete",
    "Each",
    "EachPages",
    "KB",
    "Login",
    "Missing",
    "Pages",
    "ScriptedAgent",
    "Single",
    "View",
    "prelude",
]

MARK = "[plan] "
MAX_TRIED = 48  # pending recall keys kept in the progress marker
MAX_RECALLS_IN_A_ROW = 64  # after this many recalls without an action, misses take their defaults
NO_AUTH_APPS = frozenset({"supervisor", "api_docs"})
AUTH_ERRORS = frozenset({"TokenExpired", "InvalidToken"})
DONE = object()
FIRST = "first"
_ENV_START = re.compile(r'\{\s*"app"\s*:\s*"')
_TOKEN = re.compile(r"\bat-([a-z_]+)-([0-9a-f]{12})\b")
_PASSWORD = re.compile(r'"account_name"\s*:\s*"([a-z_]+)"\s*,\s*"password"\s*:\s*"([^"\\]+)"')
_DECODER = json.JSONDecoder()
NOTE = "NOTE "
_NOTE_RE = re.compile(r"NOTE (s\d+) = ")
ACC = "ACC "
_ACC_RE = re.compile(r"ACC (s\d+) = ")
CRED = "CRED "
_CRED_RE = re.compile(r"CRED (?=\{)")


class Missing(Exception):
    """A value is not in the view (and no recall for it is pending without success)."""

    def __init__(self, key: str, query: str):
        super().__init__(query)
        self.key = key
        self.query = query


class Skip(Exception):
    """Nothing to do in this stage (the value it needed is gone): move on."""


class NeedAux(Exception):
    """A credential is gone even after a recall: fetch it again with this call first."""

    def __init__(self, act: "Act"):
        super().__init__(f"{act.app}.{act.api}")
        self.act = act


@dataclass(frozen=True)
class Act:
    app: str
    api: str
    args: dict = field(default_factory=dict)


def C(app: str, api: str, **args: Any) -> Act:
    return Act(app, api, args)


def _short(key: str) -> str:
    return hashlib.sha1(key.encode()).hexdigest()[:6]


def _text_of(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for p in content:
            if isinstance(p, dict):
                parts.append(str(p.get("text") or p.get("content") or ""))
            else:
                parts.append(str(p))
        return "\n".join(parts)
    return str(content)


def _is_envelope(obj: Any) -> bool:
    return isinstance(obj, dict) and "app" in obj and "api" in obj and "status" in obj


def scan_envelopes(text: str) -> list[dict]:
    """All JSON envelopes embedded in a text (also inside JSON-escaped strings)."""
    out: list[dict] = []
    variants = [text]
    if '\\"app\\"' in text:
        variants.append(text.replace('\\\\', '\x00').replace('\\"', '"').replace('\\n', '\n').replace('\x00', '\\'))
    for t in variants:
        for m in _ENV_START.finditer(t):
            try:
                obj, _ = _DECODER.raw_decode(t, m.start())
            except ValueError:
                continue
            if _is_envelope(obj):
                out.append(obj)
    return out


@dataclass
class _Parsed:
    envelopes: list[dict]
    keys: list[tuple[str, str, str] | None]
    notes: list[tuple[str, Any]]
    tokens: list[tuple[str, str]]
    passwords: list[tuple[str, str]]
    state: dict | None
    accs: list[tuple[str, Any]] = field(default_factory=list)
    cred: dict | None = None


class View:
    """The parsed managed view: observations, credentials seen, own progress marker, last call/result."""

    def __init__(self, messages: list[dict], cache: dict | None = None):
        self.envelopes: list[dict] = []  # in view order
        self.keys: list[tuple[str, str, str] | None] = []  # (app, api, canonical args) per envelope
        self.notes: dict[str, Any] = {}  # the agent's own plan notes ("NOTE s4 = [...]"), latest wins
        # what its newest own message restates (loop queues, running aggregates, credentials): preferred over
        # older copies that fold blocks or recall results may quote
        self.own_notes: dict[str, Any] = {}
        self.own_accs: dict[str, Any] = {}
        self.accs: dict[str, Any] = {}  # running aggregates found anywhere (latest wins)
        self.cred: dict = {}
        self.tokens: list[tuple[str, str]] = []  # (app, token) in view order
        self.passwords: list[tuple[str, str]] = []
        self.state: dict | None = None
        self.last_result: Any = None  # envelope / text answering the latest assistant tool call
        self.n_assistant = 0
        cache = cache if cache is not None else {}
        last_assistant = -1
        own_state = False
        for i, m in enumerate(messages):
            if m.get("role") == "assistant":
                last_assistant = i
        for i, m in enumerate(messages):
            role = m.get("role")
            hit = cache.get(id(m))
            if hit is not None and hit[0] is m and hit[1] == m.get("content"):
                parsed, text = hit[2], hit[3]
            else:
                text = _text_of(m.get("content"))
                calls = m.get("tool_calls") or []
                if calls:
                    text = text + "\n" + "\n".join(
                        str((c.get("function") or {}).get("arguments", "")) for c in calls if isinstance(c, dict))
                key = (role, text)
                parsed = cache.get(key)
                if parsed is None:
                    parsed = self._parse(role, text)
                    if len(cache) < 40000:
                        cache[key] = parsed
                if len(cache) < 40000:
                    cache[id(m)] = (m, m.get("content"), parsed, text)
            self.envelopes.extend(parsed.envelopes)
            self.keys.extend(parsed.keys)
            self.notes.update(parsed.notes)
            self.accs.update(parsed.accs)
            if role == "assistant" and i == last_assistant:
                self.own_notes = dict(parsed.notes)
                self.own_accs = dict(parsed.accs)
                self.cred = dict(parsed.cred or {})
            self.tokens.extend(parsed.tokens)
            self.passwords.extend(parsed.passwords)
            if parsed.state is not None:
                if role == "assistant":
                    self.state = parsed.state
                    own_state = True
                elif not own_state and (self.state is None or
                                        int(parsed.state.get("n", 0)) >= int(self.state.get("n", 0))):
                    self.state = parsed.state  # only from fold/recall text, and only when no own marker
            if role == "assistant":
                self.n_assistant += 1
            if role == "tool" and i > last_assistant >= 0 and self.last_result is None:
                self.last_result = parsed.envelopes[-1] if parsed.envelopes else text
        self.has_history = self.n_assistant > 0 or any(
            _text_of(m.get("content")).startswith("[agentmem") for m in messages)

    @staticmethod
    def _parse(role: str | None, text: str) -> _Parsed:
        envs: list[dict] = []
        if role == "tool":
            try:
                obj = json.loads(text)
                if _is_envelope(obj):
                    envs = [obj]
            except ValueError:
                pass
        if not envs and '"app"' in text:
            envs = scan_envelopes(text)
        tokens = [(a, f"at-{a}-{h}") for a, h in _TOKEN.findall(text)] if "at-" in text else []
        pws = _PASSWORD.findall(text) if "account_name" in text else []
        state = None
        if MARK in text:
            # the latest marker in this text wins (fold blocks may quote several)
            for m in re.finditer(re.escape(MARK) + r"(\{[^\n]*?\})(?=\s|$)", text):
                try:
                    state = json.loads(m.group(1))
                except ValueError:
                    continue
        keys: list[tuple[str, str, str] | None] = []
        for e in envs:
            try:
                keys.append((e["app"], e["api"], _canon(e.get("args") or {})))
            except (TypeError, ValueError):
                keys.append(None)
        notes: list[tuple[str, Any]] = []
        if NOTE in text:
            for m in _NOTE_RE.finditer(text):
                try:
                    val, _ = _DECODER.raw_decode(text, m.end())
                except ValueError:
                    continue
                notes.append((m.group(1), val))
        accs: list[tuple[str, Any]] = []
        if ACC in text:
            for m in _ACC_RE.finditer(text):
                try:
                    val, _ = _DECODER.raw_decode(text, m.end())
                except ValueError:
                    continue
                accs.append((m.group(1), val))
        cred = None
        if CRED in text:
            for m in _CRED_RE.finditer(text):
                try:
                    val, _ = _DECODER.raw_decode(text, m.end())
                except ValueError:
                    continue
                if isinstance(val, dict):
                    cred = val
        return _Parsed(envs, keys, notes, tokens, pws, state, accs, cred)


def _canon(args: dict) -> str:
    return json.dumps(args, sort_keys=True)


def _int(v: Any) -> int:
    try:
        return int(v)
    except (TypeError, ValueError):
        return -1


def _matches(args: dict, want: dict) -> bool:
    for k, v in want.items():
        if k not in args or args[k] != v:
            return False
    return True


class KB:
    """Lookups over the view. A miss raises Missing once per key (-> recall), then returns a default."""

    def __init__(self, view: View, tried: list[str], give_up: bool = False):
        self.view = view
        self.tried = tried  # keys recalled for whose value has not come back since (ordered, capped)
        self.give_up = give_up  # too many recalls in a row: every miss now takes its default
        self.notes_out: list[tuple[str, Any]] = []  # notes to write into this call's message
        self.acc_out: dict[str, Any] = {}  # running aggregates updated by this call
        self._index: dict[tuple[str, str], list[dict]] = {}
        self._exact: dict[tuple[str, str, str], dict] = {}
        for e, key in zip(view.envelopes, view.keys):
            self._index.setdefault((e["app"], e["api"]), []).append(e)
            if key is not None:
                self._exact[key] = e  # the latest one wins

    def miss(self, key: str, query: str) -> None:
        """A value is not in the view: recall it (once), or - already tried - let the caller use its default."""
        h = _short(key)
        if h not in self.tried and not self.give_up:
            raise Missing(h, query)

    def found(self, key: str) -> None:
        """A value is in the view: if a recall was pending for it, it worked (a later miss may recall again)."""
        if self.tried:
            h = _short(key)
            if h in self.tried:
                self.tried.remove(h)

    def find(self, app: str, api: str, **args: Any) -> dict | None:
        e = self._exact.get((app, api, _canon(args)))
        if e is not None:
            return e
        for e in reversed(self._index.get((app, api), [])):
            if _matches(e.get("args") or {}, args):
                return e
        return None

    def get(self, app: str, api: str, **args: Any) -> Any:
        """The response of this call, from the view. None when the call failed or could not be recalled."""
        e = self.find(app, api, **args)
        if e is None:
            words = " ".join(f"{k} {v}" for k, v in args.items())
            self.miss(f"{app}.{api}:{_canon(args)}", f"response of {app} {api} {words}".strip())
            return None
        if self.tried:
            self.found(f"{app}.{api}:{_canon(args)}")
        return e.get("response") if e.get("status") == "ok" else None

    def pages(self, app: str, api: str, until: Callable[[dict], bool] | None = None, **args: Any) -> list[dict]:
        """All items of a paginated list, page by page, as far as the view (and recall) allows.

        `until(page)` stops early (the same predicate the Pages stage used)."""
        items: list[dict] = []
        max_known: int | None = None
        p = 0
        while True:
            r = self.get(app, api, **args, page_index=p)
            if r is None:
                if max_known is None:
                    known = [e for e in self._index.get((app, api), []) if _matches(e.get("args") or {}, args)]
                    max_known = max((_int((e.get("args") or {}).get("page_index", 0)) for e in known), default=-1)
                if p < max_known:
                    p += 1
                    continue
                break
            items.extend(r.get("items", []))
            if not r.get("has_more") or (until is not None and until(r)):
                break
            p += 1
        return items

    def note(self, key: str) -> Any:
        """The agent's own note (a loop list it wrote down; restated each turn); recalled once if gone."""
        for k, v in reversed(self.notes_out):
            if k == key:
                return v
        for src in (self.view.own_notes, self.view.notes):
            if key in src:
                self.found(f"note:{key}")
                return src[key]
        self.miss(f"note:{key}", f"NOTE {key}")
        return None

    def acc(self, stage: "Stage | str", default: Any = None) -> Any:
        """A running aggregate the agent keeps (restated in each of its messages); recalled once if gone."""
        key = stage if isinstance(stage, str) else stage.key
        if default is None and not isinstance(stage, str):
            default = stage.init
        if key in self.acc_out:
            return self.acc_out[key]
        for src in (self.view.own_accs, self.view.accs):
            if key in src:
                self.found(f"acc:{key}")
                return src[key]
        if self.view.n_assistant and self.view.state and int(self.view.state.get("k", 0)) > _stage_index(key):
            self.miss(f"acc:{key}", f"ACC {key}")  # it had one and lost it: ask memory (once)
        return json.loads(json.dumps(default))

    def set_acc(self, stage: "Stage | str", value: Any) -> None:
        self.acc_out[stage if isinstance(stage, str) else stage.key] = value

    def take(self, stage: "Stage") -> Any:
        """Read an aggregate and stop restating it (a loop that consumes it writes its own queue)."""
        v = self.acc(stage)
        self.acc_out[stage.key] = None
        return v

    def token(self, app: str) -> str:
        """The latest access token for `app` seen anywhere in the view (login results, own call arguments)."""
        for a, tok in reversed(self.view.tokens):
            if a == app:
                self.found(f"token:{app}")
                return tok
        self.miss(f"token:{app}", f"{app} login access_token")
        raise NeedAux(Credentials.login_act(self, app))

    def profile(self) -> dict:
        e = self.find("supervisor", "show_profile")
        if e is None and isinstance(self.view.cred.get("me"), dict):
            return self.view.cred["me"]  # restated by the agent itself
        r = self.get("supervisor", "show_profile")
        if r is None:
            raise NeedAux(C("supervisor", "show_profile"))
        return r

    def password(self, app: str) -> str:
        for a, pw in reversed(self.view.passwords):
            if a == app:
                self.found(f"password:{app}")
                return pw
        self.miss(f"password:{app}", f"supervisor show_account_passwords password {app}")
        raise NeedAux(C("supervisor", "show_account_passwords"))


class Credentials:
    @staticmethod
    def login_act(kb: KB, app: str) -> Act:
        prof = kb.profile()
        user = prof["phone_number"] if app == "phone" else prof["email"]
        return C(app, "login", username=user, password=kb.password(app))


# ---------------------------------------------------------------------------------------------------------
# Stages: each one a small state machine over a JSON-able sub-state (control information only).
def _stage_index(key: str) -> int:
    try:
        return int(key[1:])
    except ValueError:
        return -1


class Stage:
    label = "stage"
    key = "s0"  # set by ScriptedAgent: "s<index>"
    init: Any = None  # the empty running aggregate of a stage with `keep`
    keep: Any = None

    def first(self, kb: KB) -> Any:
        return 0

    def action(self, sub: Any, kb: KB) -> Act:
        raise NotImplementedError

    def advance(self, sub: Any, kb: KB) -> Any:
        return DONE


class Single(Stage):
    """One call whose arguments may be computed from the view."""

    def __init__(self, act: Act | Callable[[KB], Act | None], label: str = "",
                 keep: Callable[[KB, Any, dict], Any] | None = None, init: Any = None):
        self.act = act
        self.label = label or (act.api if isinstance(act, Act) else "call")
        self.keep, self.init = keep, init  # keep(kb, acc, response) -> acc

    def advance(self, sub: Any, kb: KB) -> Any:
        if self.keep is not None:
            a = self.act(kb) if callable(self.act) else self.act
            r = kb.get(a.app, a.api, **a.args) if a is not None else None
            if r:
                kb.set_acc(self, self.keep(kb, kb.acc(self), r))
        return DONE

    def first(self, kb: KB) -> Any:
        a = self.act(kb) if callable(self.act) else self.act
        return DONE if a is None else 0

    def action(self, sub: Any, kb: KB) -> Act:
        a = self.act(kb) if callable(self.act) else self.act
        if a is None:
            raise Skip()
        return a


class Login(Stage):
    def __init__(self, app: str):
        self.app = app
        self.label = f"login {app}"

    def action(self, sub: Any, kb: KB) -> Act:
        return Credentials.login_act(kb, self.app)


class Pages(Stage):
    """Walk a paginated list API until has_more is false (or `until(page)` says stop).

    `args` may be a callable of the view (values such as ids must be read there); None skips the stage."""

    def __init__(self, app: str, api: str, args: dict | Callable[[KB], dict | None] | None = None,
                 until: Callable[[dict], bool] | None = None, keep: Callable[[KB, Any, dict], Any] | None = None,
                 init: Any = None):
        self.app, self.api, self._args, self.until = app, api, args or {}, until
        self.keep, self.init = keep, init  # keep(kb, acc, page response) -> acc: what it carries from each page
        self.label = f"{app}.{api} pages"

    def args(self, kb: KB) -> dict | None:
        return self._args(kb) if callable(self._args) else dict(self._args)

    def first(self, kb: KB) -> Any:
        return DONE if self.args(kb) is None else 0

    def action(self, sub: Any, kb: KB) -> Act:
        a = self.args(kb)
        if a is None:
            raise Skip()
        return Act(self.app, self.api, {**a, "page_index": int(sub)})

    def advance(self, sub: Any, kb: KB) -> Any:
        a = self.args(kb)
        if a is None:
            return DONE
        r = kb.get(self.app, self.api, **a, page_index=int(sub))
        nxt = DONE if not r or not r.get("has_more") or (self.until is not None and self.until(r)) else int(sub) + 1
        if self.keep is not None and r:
            kb.set_acc(self, self.keep(kb, kb.acc(self), r))
        return nxt


def _item_tag(item: Any) -> str:
    return hashlib.sha1(json.dumps(item, sort_keys=True, default=str).encode()).hexdigest()[:6]


def _loop_items(stage: Any, kb: KB) -> list:
    """The loop list: from the note the agent wrote when the loop started, else derived again from the view."""
    n = kb.note(stage.key)
    if isinstance(n, list):
        return n
    return _start_loop(stage, kb)  # derived again (as far as the view allows) and written down afresh


def _set_queue(stage: Any, kb: KB, rest: list) -> None:
    """A consuming loop restates only the items still to process."""
    kb.notes_out.append((stage.key, rest))


def _start_loop(stage: Any, kb: KB) -> list:
    items = _jsonable(stage.items(kb))
    if items and not any(k == stage.key for k, _ in kb.notes_out):
        kb.notes_out.append((stage.key, items))  # written into the message this call returns...
        kb.view.notes[stage.key] = items  # ...so it is part of the view from now on
    return items


def _items_fn(items: Any) -> Callable[[KB], list]:
    """A loop over the same list as an earlier loop stage reads that stage's note."""
    if isinstance(items, Stage):
        return lambda kb: _loop_items(items, kb)
    return items


def _jsonable(items: list) -> list:
    return json.loads(json.dumps(list(items), default=str))


def _locate(items: list, i: int, tag: str | None) -> int:
    """Where the loop is: item i, unless the list changed (values gone) and the item now sits elsewhere."""
    if tag is None or (i < len(items) and _item_tag(items[i]) == tag):
        return i
    for j, it in enumerate(items):
        if _item_tag(it) == tag:
            return j
    return i


class Each(Stage):
    """One call per item; the item list is recomputed from the view at every step.

    Sub-state: [index, tag of the current item] (the tag is a short hash that keeps the loop on the right item
    if the list shrinks because values were lost)."""

    def __init__(self, items: "Callable[[KB], list] | Stage", act: Callable[[KB, Any], Act | None],
                 label: str = "each", keep: Callable[[KB, Any, Any, Any], Any] | None = None, init: Any = None,
                 queue: bool = False):
        self.items, self.act, self.label = _items_fn(items), act, label
        # keep(kb, acc, item, response) -> acc; queue: the note holds only the items still to process
        self.keep, self.init, self.queue = keep, init, queue

    def list(self, kb: KB) -> list:
        """The loop's list as the agent wrote it down (or derived again from the view when the note is gone)."""
        return _loop_items(self, kb)

    def first(self, kb: KB) -> Any:
        items = _start_loop(self, kb)
        return [0, _item_tag(items[0])] if items else DONE

    def action(self, sub: Any, kb: KB) -> Act:
        items = _loop_items(self, kb)
        i = _locate(items, int(sub[0]), sub[1])
        if i >= len(items):
            raise Skip()
        a = self.act(kb, items[i])
        if a is None:
            raise Skip()
        return a

    def advance(self, sub: Any, kb: KB) -> Any:
        items = _loop_items(self, kb)
        i = _locate(items, int(sub[0]), sub[1])
        acc = None
        if self.keep is not None and i < len(items):
            a = self.act(kb, items[i])
            r = kb.get(a.app, a.api, **a.args) if a is not None else None
            acc = self.keep(kb, kb.acc(self), items[i], r) if r else kb.acc(self)
        if self.queue:
            rest = items[i + 1:]
            nxt = [0, _item_tag(rest[0])] if rest else DONE
            _set_queue(self, kb, rest)
        else:
            nxt = [i + 1, _item_tag(items[i + 1])] if i + 1 < len(items) else DONE
        if self.keep is not None and i < len(items):
            kb.set_acc(self, acc)
        return nxt


class EachPages(Stage):
    """For each item, walk a paginated list API. Sub-state: [item index, page, item tag]."""

    def __init__(self, items: "Callable[[KB], list] | Stage", app: str, api: str, args: Callable[[Any], dict],
                 label: str = "each pages", keep: Callable[[KB, Any, Any, dict], Any] | None = None,
                 init: Any = None, queue: bool = False):
        self.items, self.app, self.api, self.args, self.label = _items_fn(items), app, api, args, label
        self.keep, self.init, self.queue = keep, init, queue

    def list(self, kb: KB) -> list:
        """The loop's list as the agent wrote it down (or derived again from the view when the note is gone)."""
        return _loop_items(self, kb)

    def first(self, kb: KB) -> Any:
        items = _start_loop(self, kb)
        return [0, 0, _item_tag(items[0])] if items else DONE

    def action(self, sub: Any, kb: KB) -> Act:
        items = _loop_items(self, kb)
        i = _locate(items, int(sub[0]), sub[2])
        if i >= len(items):
            raise Skip()
        return Act(self.app, self.api, {**self.args(items[i]), "page_index": int(sub[1])})

    def advance(self, sub: Any, kb: KB) -> Any:
        items = _loop_items(self, kb)
        i, p = _locate(items, int(sub[0]), sub[2]), int(sub[1])
        r = None
        if i < len(items):
            r = kb.get(self.app, self.api, **self.args(items[i]), page_index=p)
        if r and r.get("has_more"):
            nxt: Any = [i, p + 1, sub[2]]
        elif self.queue:
            rest = items[i + 1:]
            nxt = [0, 0, _item_tag(rest[0])] if rest else DONE
            _set_queue(self, kb, rest)
        else:
            nxt = [i + 1, 0, _item_tag(items[i + 1])] if i + 1 < len(items) else DONE
        if self.keep is not None and r:
            kb.set_acc(self, self.keep(kb, kb.acc(self), items[i], r))
        return nxt


class Complete(Stage):
    label = "complete"

    def __init__(self, answer: Callable[[KB], Any] | None = None):
        self.answer = answer

    def action(self, sub: Any, kb: KB) -> Act:
        if self.answer is None:
            return C("supervisor", "complete_task")
        return C("supervisor", "complete_task", answer=self.answer(kb))


def prelude(apps: Iterable[str]) -> list[Stage]:
    """Read the profile and passwords, then log in to every app the task needs."""
    return [Single(C("supervisor", "show_profile")), Single(C("supervisor", "show_account_passwords")),
            *[Login(a) for a in apps]]


def _first(stage: Stage, kb: KB) -> Any:
    """Start a stage; one that keeps a running aggregate writes down its empty aggregate right away."""
    if stage.keep is not None and stage.key not in kb.view.own_accs and stage.key not in kb.acc_out:
        kb.set_acc(stage, json.loads(json.dumps(stage.init)))
    return stage.first(kb)


# ---------------------------------------------------------------------------------------------------------
class ScriptedAgent:
    """A litellm-style completion callable that solves one task by its plan, reading values from the view."""

    def __init__(self, stages: list[Stage], name: str = "scripted"):
        self.stages = stages
        for i, stage in enumerate(stages):
            stage.key = f"s{i}"
        self.name = name
        self.apps = [s.app for s in stages if isinstance(s, Login)]
        self._cache: dict = {}

    def __call__(self, model: str = "scripted", messages: list[dict] | None = None,
                 tools: list[dict] | None = None, **kw: Any) -> dict:
        view = View(list(messages or []), self._cache)
        st = dict(view.state) if view.state else {"k": 0, "s": FIRST, "p": False, "m": "init", "t": [], "c": 0,
                                                  "r": None, "n": 0}
        note, act, kind = self._decide(st, view)
        st["n"] = int(st.get("n", 0)) + 1
        call_id = f"call_{st['n']:04d}"
        if act is None:
            content = MARK + json.dumps(st, separators=(",", ":")) + " " + note
            msg = {"role": "assistant", "content": content}
            finish = "stop"
        else:
            st["m"] = kind
            content = MARK + json.dumps(st, separators=(",", ":")) + " " + note
            if kind == "recall":
                fn = {"name": "recall_memory", "arguments": json.dumps(act.args)}
            else:
                fn = {"name": "call_api",
                      "arguments": json.dumps({"app": act.app, "api": act.api, "arguments": act.args})}
            msg = {"role": "assistant", "content": content,
                   "tool_calls": [{"id": call_id, "type": "function", "function": fn}]}
            finish = "tool_calls"
        n_in = sum(len(_text_of(m.get("content"))) for m in (messages or [])) // 4
        n_out = len(json.dumps(msg)) // 4
        return {"id": f"scripted-{call_id}", "object": "chat.completion", "model": model,
                "choices": [{"index": 0, "message": msg, "finish_reason": finish}],
                "usage": {"prompt_tokens": n_in, "completion_tokens": n_out, "total_tokens": n_in + n_out}}

    # ---------------------------------------------------------------------------------------------------
    def _decide(self, st: dict, view: View) -> tuple[str, Act | None, str]:
        notes: list[tuple[str, Any]] = []
        accs: dict[str, Any] = {}
        note, act, kind = self._decide_inner(st, view, notes, accs)
        # working memory restated in every message (bounded: loop queues shrink, aggregates are compact), so it
        # lives in the newest part of the context; the memory may still fold it away - then it is recalled
        out_notes = dict(view.own_notes)
        out_notes.update(notes)
        out_accs = dict(view.own_accs)
        out_accs.update(accs)
        dump = lambda v: json.dumps(v, separators=(",", ":"))  # noqa: E731
        for key, items in out_notes.items():
            if items:
                note += f"\n{NOTE}{key} = {dump(items)}"
        for key, val in out_accs.items():
            if val is not None:
                note += f"\n{ACC}{key} = {dump(val)}"
        cred = self._cred(view)
        if cred:
            note += f"\n{CRED}{dump(cred)}"
        return note, act, kind

    def _cred(self, view: View) -> dict:
        """Who I am, my current access tokens and the passwords to log in again (for this task's apps)."""
        out: dict[str, Any] = {}
        prof = None
        for e in reversed(view.envelopes):
            if e.get("app") == "supervisor" and e.get("api") == "show_profile" and e.get("status") == "ok":
                prof = e.get("response")
                break
        if not isinstance(prof, dict):
            prof = view.cred.get("me")
        if isinstance(prof, dict):
            out["me"] = {k: prof[k] for k in ("email", "phone_number") if k in prof}
        tok = {}
        for a, t in view.tokens:
            if a in self.apps:
                tok[a] = t
        if tok:
            out["tok"] = tok
        pw = {}
        for a, w in view.passwords:
            if a in self.apps:
                pw[a] = w
        if pw:
            out["pw"] = [{"account_name": a, "password": w} for a, w in sorted(pw.items())]
        return out

    def _decide_inner(self, st: dict, view: View, notes: list, accs: dict) -> tuple[str, Act | None, str]:
        if st.get("m") == "main":
            res = view.last_result
            if isinstance(res, dict) and res.get("status") == "error" and \
                    (res.get("error") or {}).get("type") in AUTH_ERRORS:
                st["r"] = res.get("app")
                st["p"] = True  # redo the main action after logging in again
            else:
                st["p"] = False
        tried = list(st.get("t") or [])
        kb = KB(view, tried, give_up=int(st.get("c") or 0) >= MAX_RECALLS_IN_A_ROW)
        kb.notes_out = notes
        kb.acc_out = accs

        def done(note: str, act: Act | None, kind: str) -> tuple[str, Act | None, str]:
            st["t"] = tried[-MAX_TRIED:]
            if kind == "main":
                st["c"] = 0  # recalls in a row are counted until the next real step
            return note, act, kind

        try:
            if st.get("r"):
                app = st["r"]
                act = Credentials.login_act(kb, app)
                st["r"] = None
                return done(f"token for {app} expired: logging in again", act, "aux")
            for _ in range(4 * len(self.stages) + 4):
                if not st.get("p"):
                    k = int(st["k"])
                    if k >= len(self.stages):
                        return done("done", None, "main")
                    nxt = _first(self.stages[k], kb) if st.get("s") == FIRST else self.stages[k].advance(st["s"], kb)
                    while nxt is DONE:
                        k += 1
                        st.update(k=k, s=FIRST)
                        if k >= len(self.stages):
                            return done("all stages done", None, "main")
                        nxt = _first(self.stages[k], kb)
                    st["s"] = nxt
                    st["p"] = True
                stage = self.stages[int(st["k"])]
                try:
                    act = stage.action(st["s"], kb)
                except Skip:
                    st.update(k=int(st["k"]) + 1, s=FIRST, p=False)
                    continue
                if act.app not in NO_AUTH_APPS and act.api != "login":
                    act = Act(act.app, act.api, {"access_token": kb.token(act.app), **act.args})
                return done(f"stage {st['k']} ({stage.label}) step {json.dumps(st['s'])}", act, "main")
            return done("no progress possible", None, "main")
        except Missing as e:
            st["t"] = ([t for t in tried if t != e.key] + [e.key])[-MAX_TRIED:]
            st["c"] = int(st.get("c") or 0) + 1
            return "a value I need is not in view: recalling it", \
                Act("recall_memory", "recall_memory", {"query": e.query}), "recall"
        except NeedAux as e:
            return done(f"fetching again: {e.act.app}.{e.act.api}", e.act, "aux")
