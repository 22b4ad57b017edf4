"""ScriptedAgent: a deterministic agent that knows each task's plan but has no memory of its own.

Its only state is the view it is given. On every call it parses that view and re-derives what it knows:

* every API observation it can find - tool messages, and JSON envelopes embedded in any text (fold blocks,
  stubs, recalled snippets) - indexed by (app, api, args);
* access tokens and passwords by pattern anywhere (including its own earlier tool-call arguments);
* where it is in its plan, from the one-line thought of its newest message (``[plan] {...} <thought>``: stage
  index, loop position or page number, and which look-ups it already tried to recall). The thought carries no
  value read from an observation: loop lists, running totals, credentials and the like are derived again from the
  observations in view every turn, as a careful LLM agent would re-read them.

When a value it needs is not in the view it calls ``recall_memory`` with the query such an agent would write:
the API it called and the arguments it passed (entity names, field names, ids it has seen in its view), e.g.
``"show_playlist_songs playlist_id 17 page_index 1"``. A recall that answers "N more, call again with page=…"
is paged through. A look-up that a recall did not bring back takes its default (credentials are fetched
again; a list or a total is derived from what remains; other data is skipped) and the evaluator scores the
outcome: after MAX_RECALLS_IN_A_ROW recalls without an action every miss takes its default (bounded tries).
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
# the header of any memory block: an extractive fold ("fold block") or a thinking one ("summarize block")
BLOCK_MARK = re.compile(r"\[agentmem: \w+ block ")
MAX_TRIED = 48  # pending recall keys kept in the progress marker
MAX_RECALLS_IN_A_ROW = 64  # after this many recalls without an action, misses take their defaults
MAX_RECALL_PAGES = 6  # pages of one recall answer read before the look-up counts as failed
NO_AUTH_APPS = frozenset({"supervisor", "api_docs"})
AUTH_ERRORS = frozenset({"TokenExpired", "InvalidToken"})
DONE = object()
FIRST = "first"
_ENV_START = re.compile(r'\{\s*"app"\s*:\s*"')
_TOKEN = re.compile(r"\bat-([a-z_]+)-([0-9a-f]{12})\b")
_PASSWORD = re.compile(r'"account_name"\s*:\s*"([a-z_]+)"\s*,\s*"password"\s*:\s*"([^"\\]+)"')
# the same pair as a fold block quotes it ("response[1]: account_name=expenses, password=jjmg7SVRTL")
_PASSWORD_LINE = re.compile(r"\baccount_name=([a-z_]+), password=([^\s,…]+)(?=,|\s|$)")
# a fold block's record of a call and the top-level fields of its result:
# '» call_api(app="supervisor", api="show_profile", arguments={})' ... 'response: first_name=Chloe, email=…'
_BLOCK_CALL = re.compile(r'^» call_api\(app="([a-z_]+)", api="([a-z_]+)"', re.M)
_BLOCK_FIELD = re.compile(r"(?:^|, )([a-z_]+)=")
_DECODER = json.JSONDecoder()


class Missing(Exception):
    """A value is not in the view (and no recall for it is pending without success)."""

    def __init__(self, key: str, query: str, page: int = 1):
        super().__init__(query)
        self.key = key
        self.query = query
        self.page = page  # > 1: the recall answered "more, call again with page=…"


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
    """An API observation as the environment wrote it - not a shortened copy (a fold may cut long strings to
    "…"; a careful reader does not take a cut value for the real one)."""
    return isinstance(obj, dict) and "app" in obj and "api" in obj and "status" in obj and not _shortened(obj)


def _shortened(obj: Any) -> bool:
    if isinstance(obj, str):
        return obj.endswith("…")
    if isinstance(obj, dict):
        return any(_shortened(v) for v in obj.values())
    if isinstance(obj, list):
        return any(_shortened(v) for v in obj)
    return False


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
    tokens: list[tuple[str, str]]
    passwords: list[tuple[str, str]]
    state: dict | None
    loops: list[tuple[str, Any]] = field(default_factory=list)
    found: list[tuple[tuple[str, str], Any]] = field(default_factory=list)
    fields: list[tuple[tuple[str, str], dict]] = field(default_factory=list)


def block_fields(text: str) -> list[tuple[tuple[str, str], dict]]:
    """((app, api), top-level fields) of each call result a fold block quotes as a `response: k=v, …` line.

    A careful reader takes a profile's e-mail or phone number from a summary line as well as from the raw JSON; a
    value the fold shortened ("…") is not taken."""
    out: list[tuple[tuple[str, str], dict]] = []
    heads = list(_BLOCK_CALL.finditer(text))
    for n, h in enumerate(heads):
        body = text[h.end(): heads[n + 1].start() if n + 1 < len(heads) else len(text)]
        for line in body.splitlines():
            if not line.startswith("response: "):
                continue
            line = line[len("response: "):]
            keys = list(_BLOCK_FIELD.finditer(line))
            rec = {}
            for j, k in enumerate(keys):
                value = line[k.end(): keys[j + 1].start() if j + 1 < len(keys) else len(line)]
                if not value.endswith("…"):
                    rec[k.group(1)] = value
            if rec:
                out.append(((h.group(1), h.group(2)), rec))
    return out


LOOP = "LOOP "
_LOOP_RE = re.compile(r"LOOP (s\d+) = ")
FOUND = "FOUND "
_FOUND_RE = re.compile(r"FOUND (s\d+)\.([\d.]+) = ")
_NEXT_PAGE = re.compile(r"call (?:recall_memory )?again with [^\n\]]*?page=(\d+)")


class View:
    """The parsed managed view: observations, credentials seen, own progress marker, last call/result.

    Built afresh from the messages on every call: nothing survives between calls except what the view shows."""

    def __init__(self, messages: list[dict], cache: dict | None = None):
        self.envelopes: list[dict] = []  # in view order
        self.keys: list[tuple[str, str, str] | None] = []  # (app, api, canonical args) per envelope
        self.tokens: list[tuple[str, str]] = []  # (app, token) in view order
        self.token_usable: set[str] = set()  # apps with a token outside the older fold blocks (see KB.token)
        self.passwords: list[tuple[str, str]] = []
        self.fields: dict[tuple[str, str], dict] = {}  # (app, api) -> fields a fold block quotes (latest wins)
        self.stale_passwords: set[tuple[str, str]] = set()  # (app, password) the app said has expired
        self.state: dict | None = None
        self.last_result: Any = None  # envelope / text answering the latest assistant tool call
        self.recall_pages: dict[str, tuple[int, int]] = {}  # recall query -> (page asked, next page offered)
        self.loops: dict[str, Any] = {}  # loop lists it wrote down once when each loop started (latest wins)
        self.found: dict[tuple[str, str], Any] = {}  # (stage, step) -> what that one step found, written once
        self.n_assistant = 0
        cache = cache if cache is not None else {}
        last_assistant = -1
        own_state = False
        recall_calls: dict[str, dict] = {}
        login_calls: dict[str, tuple[str, str]] = {}  # call id -> (app, password it tried)
        last_block = len(messages)
        for i, m in enumerate(messages):
            if m.get("role") == "assistant":
                last_assistant = i
            elif m.get("role") == "user" and BLOCK_MARK.match(_text_of(m.get("content"))):
                last_block = i
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
            self.tokens.extend(parsed.tokens)
            if parsed.tokens and (i >= last_block or not (role == "user" and BLOCK_MARK.match(text))):
                self.token_usable.update(a for a, _t in parsed.tokens)
            self.passwords.extend(parsed.passwords)
            for key, rec in parsed.fields:
                self.fields[key] = {**self.fields.get(key, {}), **rec}
            self.loops.update(parsed.loops)
            self.found.update(parsed.found)
            if role == "assistant":
                for c in m.get("tool_calls") or []:
                    fn = (c.get("function") or {}) if isinstance(c, dict) else {}
                    if fn.get("name") == "recall_memory":
                        try:
                            recall_calls[c.get("id")] = json.loads(fn.get("arguments") or "{}")
                        except ValueError:
                            pass
                    elif fn.get("name") == "call_api" and '"login"' in str(fn.get("arguments")):
                        login = _login_tried(fn.get("arguments"))
                        if login:
                            login_calls[c.get("id")] = login
            if role == "tool":
                self._note_expired(parsed.envelopes, login_calls.get(m.get("tool_call_id")))
            if role == "tool" and m.get("tool_call_id") in recall_calls:
                args = recall_calls[m.get("tool_call_id")]
                offered = _NEXT_PAGE.search(text)
                if isinstance(args, dict) and isinstance(args.get("query"), str):
                    self.recall_pages[args["query"]] = (_int(args.get("page") or 1),
                                                        int(offered.group(1)) if offered else 0)
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

    def _note_expired(self, envelopes: list[dict], login: tuple[str, str] | None) -> None:
        """An app saying a password has expired: that password (a refused login) or every password of the app
        read so far (a token that expired with its password) is not tried again; it is looked up anew."""
        for e in envelopes:
            err = (e.get("error") or {}) if e.get("status") == "error" else {}
            kind, app = err.get("type"), e.get("app")
            if kind in ("PasswordExpired", "AuthenticationFailed") and login is not None:
                self.stale_passwords.add(login)
            elif kind == "TokenExpired" and "password" in str(err.get("message", "")).lower():
                self.stale_passwords.update((a, pw) for a, pw in self.passwords if a == app)

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
        pws = (_PASSWORD.findall(text) + _PASSWORD_LINE.findall(text)) if "account_name" in text else []
        fields = block_fields(text) if "» call_api(" in text else []
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
        loops: list[tuple[str, Any]] = []
        if LOOP in text:
            for m in _LOOP_RE.finditer(text):
                try:
                    val, _ = _DECODER.raw_decode(text, m.end())
                except ValueError:
                    continue  # cut by a fold: as good as gone
                if isinstance(val, list):
                    loops.append((m.group(1), val))
        found: list[tuple[tuple[str, str], Any]] = []
        if FOUND in text:
            for m in _FOUND_RE.finditer(text):
                try:
                    val, _ = _DECODER.raw_decode(text, m.end())
                except ValueError:
                    continue
                found.append(((m.group(1), m.group(2).rstrip(".")), val))
        return _Parsed(envs, keys, tokens, pws, state, loops, found, fields)


def _login_tried(arguments: Any) -> tuple[str, str] | None:
    """(app, password) of a call_api login call's arguments, if that is what they are."""
    try:
        a = json.loads(arguments) if isinstance(arguments, str) else arguments
    except ValueError:
        return None
    inner = a.get("arguments") if isinstance(a, dict) else None
    if isinstance(inner, dict) and a.get("api") == "login" and isinstance(inner.get("password"), str):
        return str(a.get("app")), inner["password"]
    return None


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


def call_query(app: str, api: str, args: dict) -> str:
    """The recall query a careful agent writes for a call it made: the API and the arguments it passed."""
    words = " ".join(f"{k} {v}" for k, v in args.items() if k != "access_token")
    return f"{api} {words}".strip()


class KB:
    """Look-ups over the view. A miss raises Missing once per key (-> recall, then paging), then takes a default."""

    def __init__(self, view: View, tried: list[str], give_up: bool = False,
                 on_default: Callable[[str], None] = lambda query: None):
        self.view = view
        self.on_default = on_default  # told the query of each miss that takes its default
        self.tried = tried  # keys recalled for whose value has not come back since (ordered, capped)
        self.give_up = give_up  # too many recalls in a row: every miss now takes its default
        self._derived: dict[str, Any] = {}  # what this call derived already (loop lists, aggregates)
        self.loop_out: list[tuple[str, list]] = []  # a loop started in this call: its list, written down once
        self.found_out: list[tuple[str, str, Any]] = []  # what the step just answered found, written down once
        self.gone = False  # a step of the stage being derived could not be read again (view, notes, recall)
        self.plan: dict = {}  # the progress marker being decided on (control information only: the stage index)
        self._index: dict[tuple[str, str], list[dict]] = {}
        self._exact: dict[tuple[str, str, str], dict] = {}
        for e, key in zip(view.envelopes, view.keys):
            self._index.setdefault((e["app"], e["api"]), []).append(e)
            if key is not None:
                self._exact[key] = e  # the latest one wins

    def miss(self, key: str, query: str) -> None:
        """A value is not in the view: recall it; page on while the recall offers more; else take the default."""
        if self.give_up:
            self.on_default(query)
            return
        h = _short(key)
        if h not in self.tried:
            raise Missing(h, query)
        asked, offered = self.view.recall_pages.get(query, (0, 0))
        if offered and offered > asked and offered <= MAX_RECALL_PAGES:
            raise Missing(h, query, page=offered)
        self.on_default(query)

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
            query = call_query(app, api, args)
            if args and any(q != query and q.startswith(api + " ") for q in self.view.recall_pages):
                # I am asking for these calls one by one: ask for every call of this API at once (paged)
                self.miss(f"{app}.{api}:all", call_query(app, api, {}))
            self.miss(f"{app}.{api}:{_canon(args)}", query)
            return None
        if self.tried:
            self.found(f"{app}.{api}:{_canon(args)}")
        return e.get("response") if e.get("status") == "ok" else None

    def pages(self, app: str, api: str, until: Callable[[dict], bool] | None = None, **args: Any) -> list[dict]:
        """All items of a paginated list, page by page, as far as the view (and recall) allows.

        `until(page)` stops early (the same predicate the Pages stage used)."""
        items: list[dict] = []
        for r in self.page_responses(app, api, until, **args):
            items.extend(r.get("items", []))
        return items

    def page_responses(self, app: str, api: str, until: Callable[[dict], bool] | None = None,
                       **args: Any) -> list[dict]:
        """The responses of every page of a list, from the view (recalled page by page when gone)."""
        out: list[dict] = []
        max_known: int | None = None
        p, gap = 0, False
        while True:
            e = self.find(app, api, **args, page_index=p)
            if e is None:  # a page is gone: ask for the whole list (every page of that call), as an agent would
                gap = True
                self.miss(f"{app}.{api}:{_canon(args)}:pages", call_query(app, api, args))
            r = e.get("response") if e is not None and e.get("status") == "ok" else None
            if r is None:
                if max_known is None:
                    known = [e for e in self._index.get((app, api), []) if _matches(e.get("args") or {}, args)]
                    max_known = max((_int((e.get("args") or {}).get("page_index", 0)) for e in known), default=-1)
                if p < max_known:
                    p += 1
                    continue
                break
            out.append(r)
            if not r.get("has_more") or (until is not None and until(r)):
                break
            p += 1
        if not gap and self.tried:
            self.found(f"{app}.{api}:{_canon(args)}:pages")
        return out

    def acc(self, stage: "Stage", default: Any = None) -> Any:
        """What a finished stage found (its `keep` over every response it got), derived again from the view."""
        if stage.key not in self._derived:
            self.gone = False
            self._derived[stage.key] = stage.derive(self)
            if not self.gone:
                self.found(self.notes_key(stage))  # complete: a later loss starts a fresh recall
        v = self._derived[stage.key]
        return json.loads(json.dumps(v)) if v is not None else default

    def notes_key(self, stage: "Stage") -> str:
        """The recall of a stage's own notes, once per stage being worked on: notes written after an earlier
        recall of them (while the stage itself was running) are asked for again when a later stage needs them."""
        return f"found:{stage.key}@{self.plan.get('k')}"

    take = acc  # a loop that consumes an earlier stage's findings reads them the same way

    def token(self, app: str) -> str:
        """The latest access token for `app` seen anywhere in the view (login results, own call arguments).

        A token seen only in a fold block older than the newest one is a fold generation old or more (blocks
        stand for 100+ rounds; tokens expire after 60 calls): log in again rather than try it."""
        if app in self.view.token_usable:
            for a, tok in reversed(self.view.tokens):
                if a == app:
                    return tok
        raise NeedAux(Credentials.login_act(self, app))  # gone: log in again (cheaper than a recall)

    def profile(self) -> dict:
        e = self.find("supervisor", "show_profile")
        if e is not None and e.get("status") == "ok":
            return e["response"]
        quoted = self.view.fields.get(("supervisor", "show_profile"), {})
        if "email" in quoted and "phone_number" in quoted:  # read off a fold block's line
            return quoted
        r = self.get("supervisor", "show_profile")
        if r is None:
            raise NeedAux(C("supervisor", "show_profile"))
        return r

    def password(self, app: str) -> str:
        for a, pw in reversed(self.view.passwords):
            if a == app:
                if (a, pw) in self.view.stale_passwords:  # the newest one I know has expired: look it up again
                    raise NeedAux(C("supervisor", "show_account_passwords"))
                self.found(f"password:{app}")
                return pw
        self.miss(f"password:{app}", f"show_account_passwords account_name {app} password")
        raise NeedAux(C("supervisor", "show_account_passwords"))


class Credentials:
    @staticmethod
    def login_act(kb: KB, app: str) -> Act:
        prof = kb.profile()
        user = prof["phone_number"] if app == "phone" else prof["email"]
        return C(app, "login", username=user, password=kb.password(app))


# ---------------------------------------------------------------------------------------------------------
# Stages: each one a small state machine over a JSON-able sub-state (control information only).
class Stage:
    label = "stage"
    key = "s0"  # set by ScriptedAgent: "s<index>"
    init: Any = None  # the empty aggregate of a stage with `keep`
    keep: Any = None

    def first(self, kb: KB) -> Any:
        return 0

    def action(self, sub: Any, kb: KB) -> Act:
        raise NotImplementedError

    def advance(self, sub: Any, kb: KB) -> Any:
        return DONE

    def derive(self, kb: KB) -> Any:
        """What this stage found: its `keep` folded over every response it got, read again from the view."""
        return _fresh(self.init)


def _fresh(v: Any) -> Any:
    return json.loads(json.dumps(v))


def merge(acc: Any, delta: Any) -> Any:
    """Add what one step found to what the earlier steps found (lists append, numbers and dicts of numbers add,
    anything else: the step's value when it has one). The plans' `keep` functions are all of these kinds."""
    if delta is None:
        return acc
    if acc is None:
        return _fresh(delta)
    if isinstance(acc, list) and isinstance(delta, list):
        return acc + delta
    if isinstance(acc, (int, float)) and isinstance(delta, (int, float)) and not isinstance(acc, bool):
        return acc + delta
    if isinstance(acc, dict) and isinstance(delta, dict):
        out = dict(acc)
        for k, v in delta.items():
            out[k] = merge(out[k], v) if k in out else _fresh(v)
        return out
    return _fresh(delta)


def _step(kb: KB, stage: "Stage", step: str, act: Act) -> tuple[str, Any, Any]:
    """One step of a finished stage, read again: ("raw", response, None), ("note", None, what the step found) or
    ("gone", None, None).

    The raw response when the view has it; else the one-line note written when the step was done; else the agent
    asks its memory - first for its own notes of this stage (one recall, paged), then for the call itself."""
    e = kb.find(act.app, act.api, **act.args)
    if e is not None:
        kb.found(f"{act.app}.{act.api}:{_canon(act.args)}")
        return "raw", (e.get("response") if e.get("status") == "ok" else None), None
    note = kb.view.found.get((stage.key, step))
    if note is not None:
        return "note", None, note
    kb.miss(kb.notes_key(stage), f'"{FOUND}{stage.key}."')
    kb.get(act.app, act.api, **act.args)  # raises Missing (recall the call) unless that was tried already
    kb.gone = True
    return "gone", None, None


def _note_step(kb: KB, stage: "Stage", step: str, value: Any) -> None:
    kb.found_out.append((stage.key, step, value))


class Single(Stage):
    """One call whose arguments may be computed from the view."""

    def __init__(self, act: Act | Callable[[KB], Act | None], label: str = "",
                 keep: Callable[[KB, Any, dict], Any] | None = None, init: Any = None, app: str | None = None):
        self.act = act
        self.app = act.app if isinstance(act, Act) else app  # the app it calls, when known before its arguments
        self.label = label or (act.api if isinstance(act, Act) else "call")
        self.keep, self.init = keep, init  # keep(kb, acc, response) -> acc

    def _act(self, kb: KB) -> Act | None:
        return self.act(kb) if callable(self.act) else self.act

    def first(self, kb: KB) -> Any:
        return DONE if self._act(kb) is None else 0

    def action(self, sub: Any, kb: KB) -> Act:
        a = self._act(kb)
        if a is None:
            raise Skip()
        return a

    def advance(self, sub: Any, kb: KB) -> Any:
        a = self._act(kb)
        if self.keep is not None and a is not None:
            r = kb.get(a.app, a.api, **a.args)
            if r:
                _note_step(kb, self, "0", self.keep(kb, _fresh(self.init), r))
        return DONE

    def derive(self, kb: KB) -> Any:
        acc = _fresh(self.init)
        a = self._act(kb)
        if self.keep is None or a is None:
            return acc
        how, r, note = _step(kb, self, "0", a)
        if how == "raw":
            return self.keep(kb, acc, r) if r else acc
        return merge(acc, note) if how == "note" else acc


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
        self.keep, self.init = keep, init  # keep(kb, acc, page response) -> acc: what it takes from each page
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
        more = bool(r and r.get("has_more") and not (self.until is not None and self.until(r)))
        if self.keep is not None and r:
            _note_step(kb, self, str(int(sub)), [self.keep(kb, _fresh(self.init), r), int(more)])
        return int(sub) + 1 if more else DONE

    def derive(self, kb: KB) -> Any:
        acc = _fresh(self.init)
        a = self.args(kb)
        if a is None or self.keep is None:
            return acc
        return _derive_pages(kb, self, a, "", acc, lambda acc, r: self.keep(kb, acc, r))


def _derive_pages(kb: KB, stage: Stage, args: dict, prefix: str, acc: Any,
                  keep: Callable[[Any, dict], Any]) -> Any:
    """Fold `keep` over every page of a list as far as the view (raw pages, own notes, recall) allows."""
    p = 0
    while p < 1000:
        act = Act(stage.app, stage.api, {**args, "page_index": p})
        how, r, note = _step(kb, stage, f"{prefix}{p}", act)
        if how == "raw":
            if not r:
                break
            acc = keep(acc, r)
            more = r.get("has_more") and not (stage.until is not None and stage.until(r))
        elif how == "note" and isinstance(note, list) and len(note) == 2:
            acc, more = merge(acc, note[0]), bool(note[1])
        else:
            break
        if not more:
            break
        p += 1
    return acc


def _item_tag(item: Any) -> str:
    return hashlib.sha1(json.dumps(item, sort_keys=True, default=str).encode()).hexdigest()[:6]


def _loop_items(stage: Any, kb: KB) -> list:
    """The loop's list: the line it wrote when the loop started (in view, or recalled by its words), else derived
    again from the observations it was built from (recalled when gone)."""
    key = "items:" + stage.key
    if key in kb._derived:
        return kb._derived[key]
    if stage.key in kb.view.loops:
        kb.found(f"loop:{stage.key}")
        kb._derived[key] = kb.view.loops[stage.key]
        return kb._derived[key]
    st = kb.view.state or {}
    k = int(st.get("k", 0))
    if k > _stage_index(stage.key) or (k == _stage_index(stage.key) and st.get("s") != FIRST):
        kb.miss(f"loop:{stage.key}", f'"{LOOP}{stage.key} = "')  # it was written: my own line first, one recall
    kb._derived[key] = _jsonable(stage.items(kb) or [])  # else derived again from what it was built from
    return kb._derived[key]


def _stage_index(key: str) -> int:
    return int(key[1:]) if key[1:].isdigit() else -1


def _start_loop(stage: Any, kb: KB) -> list:
    """A loop starts: derive its list from the view and write it down once, in this call's one-line thought."""
    items = _loop_items(stage, kb)
    if items:
        kb.loop_out.append((stage.key, items))
    return items


def _items_fn(items: Any) -> Callable[[KB], list]:
    """A loop over the same list as an earlier loop stage reads that stage's list."""
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
    """One call per item; the item list is derived again from the view at every step.

    Sub-state: [index, tag of the current item] (the tag is a short hash that keeps the loop on the right item
    if the list shrinks because values were lost)."""

    def __init__(self, items: "Callable[[KB], list] | Stage", act: Callable[[KB, Any], Act | None],
                 label: str = "each", keep: Callable[[KB, Any, Any, Any], Any] | None = None, init: Any = None,
                 queue: bool = False):
        # keep(kb, acc, item, response) -> acc; `queue` is accepted for older plans and means nothing now
        self.items, self.act, self.label = _items_fn(items), act, label
        self.keep, self.init = keep, init

    def list(self, kb: KB) -> list:
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
        if self.keep is not None and i < len(items):
            a = self.act(kb, items[i])
            r = kb.get(a.app, a.api, **a.args) if a is not None else None
            if r:
                _note_step(kb, self, str(i), self.keep(kb, _fresh(self.init), items[i], r))
        return [i + 1, _item_tag(items[i + 1])] if i + 1 < len(items) else DONE

    def derive(self, kb: KB) -> Any:
        acc = _fresh(self.init)
        if self.keep is None:
            return acc
        for i, item in enumerate(_loop_items(self, kb)):
            a = self.act(kb, item)
            if a is None:
                continue
            how, r, note = _step(kb, self, str(i), a)
            if how == "raw" and r:
                acc = self.keep(kb, acc, item, r)
            elif how == "note":
                acc = merge(acc, note)
        return acc


class EachPages(Stage):
    """For each item, walk a paginated list API. Sub-state: [item index, page, item tag]."""

    until = None

    def __init__(self, items: "Callable[[KB], list] | Stage", app: str, api: str, args: Callable[[Any], dict],
                 label: str = "each pages", keep: Callable[[KB, Any, Any, dict], Any] | None = None,
                 init: Any = None, queue: bool = False):
        self.items, self.app, self.api, self.args, self.label = _items_fn(items), app, api, args, label
        self.keep, self.init = keep, init

    def list(self, kb: KB) -> list:
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
        r = kb.get(self.app, self.api, **self.args(items[i]), page_index=p) if i < len(items) else None
        if self.keep is not None and r and not r.get("has_more"):  # the item's last page: what its pages found
            _note_step(kb, self, str(i), self._derive_item(kb, i, items[i], _fresh(self.init)))
        if r and r.get("has_more"):
            return [i, p + 1, sub[2]]
        return [i + 1, 0, _item_tag(items[i + 1])] if i + 1 < len(items) else DONE

    def derive(self, kb: KB) -> Any:
        acc = _fresh(self.init)
        if self.keep is None:
            return acc
        for i, item in enumerate(_loop_items(self, kb)):
            note = kb.view.found.get((self.key, str(i)))
            acc = merge(acc, note) if note is not None else self._derive_item(kb, i, item, acc)
        return acc

    def _derive_item(self, kb: KB, i: int, item: Any, acc: Any) -> Any:
        return _derive_pages(kb, self, self.args(item), f"{i}.", acc, lambda acc, r: self.keep(kb, acc, item, r))


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


# ---------------------------------------------------------------------------------------------------------
class ScriptedAgent:
    """A litellm-style completion callable that solves one task by its plan; its only state is the view."""

    def __init__(self, stages: list[Stage], name: str = "scripted"):
        self.stages = stages
        for i, stage in enumerate(stages):
            stage.key = f"s{i}"
        self.name = name
        self.apps = [s.app for s in stages if isinstance(s, Login)]
        self._cache: dict = {}  # parse cache keyed by message text: speed only, never consulted for values
        # look-ups that went on with their default (the recall did not bring the value back, or too many recalls in
        # a row), in order, once each: for the run's summary, so a task done on partial data says so. Never read
        # back by the agent (its only state is the view).
        self.given_up: list[str] = []

    def __call__(self, model: str = "scripted", messages: list[dict] | None = None,
                 tools: list[dict] | None = None, **kw: Any) -> dict:
        view = View(list(messages or []), self._cache)
        st = dict(view.state) if view.state else {"k": 0, "s": FIRST, "p": False, "m": "init", "t": [], "c": 0,
                                                  "r": None, "n": 0}
        # a careful agent uses the tools it is given: without recall_memory, what is gone takes its default
        can_recall = any((t.get("function") or {}).get("name") == "recall_memory" for t in tools or [])
        note, act, kind, loops, found = self._decide(st, view, can_recall)
        for key, items in loops:  # a loop started: its list, once, on the same line
            note += f" {LOOP}{key} = {json.dumps(items, separators=(',', ':'))}"
        for key, step, value in found:  # what the step just answered found, once
            note += f" {FOUND}{key}.{step} = {json.dumps(value, separators=(',', ':'))}"
        st["n"] = int(st.get("n", 0)) + 1
        call_id = f"call_{st['n']:04d}"
        if act is not None:
            st["m"] = kind
        # one line: where I am in my plan (control information, no value read from an observation) and a thought
        content = MARK + json.dumps(st, separators=(",", ":")) + " " + note.replace("\n", " ")
        if act is None:
            msg = {"role": "assistant", "content": content}
            finish = "stop"
        else:
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

    def _given_up(self, query: str) -> None:
        if query not in self.given_up:
            self.given_up.append(query)

    # ---------------------------------------------------------------------------------------------------
    def _decide(self, st: dict, view: View, can_recall: bool = True) -> tuple[str, Act | None, str, list, list]:
        if st.get("m") == "main":
            res = view.last_result
            if isinstance(res, dict) and res.get("status") == "error" and \
                    (res.get("error") or {}).get("type") in AUTH_ERRORS:
                st["r"] = res.get("app")
                st["p"] = True  # redo the main action after logging in again
            else:
                st["p"] = False
        tried = list(st.get("t") or [])
        kb = KB(view, tried, give_up=not can_recall or int(st.get("c") or 0) >= MAX_RECALLS_IN_A_ROW,
                on_default=self._given_up)
        kb.plan = st

        def done(note: str, act: Act | None, kind: str) -> tuple[str, Act | None, str, list, list]:
            st["t"] = tried[-MAX_TRIED:]
            if kind == "main":
                st["c"] = 0  # recalls in a row are counted until the next real step
            return note, act, kind, kb.loop_out, kb.found_out

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
                    nxt = self.stages[k].first(kb) if st.get("s") == FIRST else self.stages[k].advance(st["s"], kb)
                    while nxt is DONE:
                        k += 1
                        st.update(k=k, s=FIRST)
                        if k >= len(self.stages):
                            return done("all stages done", None, "main")
                        nxt = self.stages[k].first(kb)
                    st["s"] = nxt
                    st["p"] = True
                stage = self.stages[int(st["k"])]
                app = getattr(stage, "app", None)
                if app and app not in NO_AUTH_APPS and not isinstance(stage, Login):
                    kb.token(app)  # logged in first, then gather what the call needs (a long recall stays whole)
                try:
                    act = stage.action(st["s"], kb)
                except Skip:
                    st.update(k=int(st["k"]) + 1, s=FIRST, p=False)
                    continue
                if act.app not in NO_AUTH_APPS and act.api != "login":
                    act = Act(act.app, act.api, {"access_token": kb.token(act.app), **act.args})
                return done(f"{stage.label}: {act.api}", act, "main")
            return done("no progress possible", None, "main")
        except Missing as e:
            st["t"] = ([t for t in tried if t != e.key] + [e.key])[-MAX_TRIED:]
            st["c"] = int(st.get("c") or 0) + 1
            args: dict[str, Any] = {"query": e.query}
            if e.page > 1:
                args["page"] = e.page
            return f"not in view any more: recalling {e.query!r}", Act("recall_memory", "recall_memory", args), \
                "recall", kb.loop_out, kb.found_out
        except NeedAux as e:
            return done(f"fetching again: {e.act.app}.{e.act.api}", e.act, "aux")
