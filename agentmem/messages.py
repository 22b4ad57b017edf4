"""Messages, rounds and the one validator every view must pass.

A *round* is the unit no primitive may split: an assistant message together with the tool results that answer its
tool calls. Providers reject histories with a dangling call or an orphan result (HTTP 400), so `validate_history`
checks exactly that, plus that a leading system message stays first and that original messages keep their order.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import itertools
import json
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

__all__ = [
    "Role",
    "ToolCall",
    "Message",
    "InvalidMessageError",
    "HistoryError",
    "Round",
    "parse_message",
    "parse_messages",
    "group_rounds",
    "validate_history",
    "message_text",
    "response_message",
    "new_message_id",
    "seeded_message_ids",
    "EmptyHistoryError",
    "require_messages",
]

Role = Literal["system", "developer", "user", "assistant", "tool"]
MAX_ID_LENGTH = 200
_ROLES = ("system", "developer", "user", "assistant", "tool")
_KNOWN_KEYS = frozenset({"id", "role", "content", "tool_calls", "tool_call_id", "name", "type"})
# Stored (in canonical JSON) but never sent: the ids of tool calls whose arguments a model returned as invalid JSON.
MALFORMED_KEY = "agentmem_malformed_arguments"


class InvalidMessageError(ValueError):
    """A message (or a history) is malformed. Names the index and/or id and what is wrong."""

    def __init__(self, problem: str, *, index: int | None = None, message_id: str | None = None):
        where = []
        if index is not None:
            where.append(f"index {index}")
        if message_id is not None:
            where.append(f"id {message_id!r}")
        prefix = f"message at {', '.join(where)}: " if where else ""
        super().__init__(prefix + problem)
        self.problem = problem
        self.index = index
        self.message_id = message_id


class HistoryError(InvalidMessageError):
    """A sequence of messages breaks an invariant (tool pairing, system first, order)."""


class EmptyHistoryError(HistoryError):
    """There is nothing to send: a model call on an empty message list is a provider error (HTTP 400)."""


def require_messages(messages: Sequence[Any]) -> None:
    """Raise EmptyHistoryError before a model call that would get no messages (nothing is stored or sent)."""
    if isinstance(messages, Sequence) and not isinstance(messages, (str, bytes)) and len(messages) == 0:
        raise EmptyHistoryError("the history is empty: pass at least one message (a model cannot be called on "
                                "none)")


class ToolCall(BaseModel):
    """One function call requested by the assistant. `arguments` is JSON text, kept verbatim."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    arguments: str = "{}"

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": self.arguments}}


class Message(BaseModel):
    """One chat message in OpenAI format, with a stable id assigned at ingest when absent."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, max_length=MAX_ID_LENGTH)
    role: Role
    content: str | list[dict[str, Any]] | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    name: str | None = None
    # provider keys the agent put on the message (cache_control, …): stored and sent back unchanged
    provider_keys: dict[str, Any] = Field(default_factory=dict)
    # ids of tool calls whose arguments the model returned as invalid JSON (kept verbatim; see parse_message)
    malformed_arguments: tuple[str, ...] = ()

    def to_dict(self, *, with_id: bool = False) -> dict[str, Any]:
        """OpenAI/litellm dict. The id is left out by default: providers reject unknown keys."""
        out: dict[str, Any] = {**self.provider_keys, "role": self.role, "content": self.content}
        if self.tool_calls:
            out["tool_calls"] = [tc.to_dict() for tc in self.tool_calls]
        if self.tool_call_id is not None:
            out["tool_call_id"] = self.tool_call_id
        if self.name is not None:
            out["name"] = self.name
        if with_id:
            out["id"] = self.id
            if self.malformed_arguments:
                out[MALFORMED_KEY] = list(self.malformed_arguments)
        return out

    def canonical_json(self) -> str:
        """The exact text the store keeps for this message (its sha256 is the message's fingerprint)."""
        return json.dumps(self.to_dict(with_id=True), ensure_ascii=False, sort_keys=True, separators=(",", ":"))

    def fingerprint(self) -> str:
        """sha256 of the message without its id: identifies the same message passed again by an agent.

        Provider keys are left out: frameworks add or drop them (litellm's message objects carry
        `provider_specific_fields`, LangChain drops `cache_control`) when the agent passes a message back.
        """
        d = self.to_dict()
        for key in self.provider_keys:
            d.pop(key, None)
        if d["content"] is None:  # providers and SDKs flip between null and "" for tool-call-only replies
            d["content"] = ""
        for tc in d.get("tool_calls") or []:  # frameworks re-serialize arguments (spaces, key order): same call
            fn = tc["function"]
            try:
                fn["arguments"] = json.dumps(json.loads(fn["arguments"] or "{}"), sort_keys=True,
                                             separators=(",", ":"))  # ASCII: escaped surrogates stay escaped
            except ValueError:  # not JSON (only possible for a hand-built Message): compare verbatim
                pass
        body = json.dumps(d, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(body.encode("utf-8")).hexdigest()

    @property
    def text(self) -> str:
        return message_text(self)

    @property
    def tool_call_ids(self) -> tuple[str, ...]:
        return tuple(tc.id for tc in self.tool_calls)


_ID_SOURCE: contextvars.ContextVar[Callable[[], str] | None] = contextvars.ContextVar("agentmem_id_source",
                                                                                      default=None)


def new_message_id() -> str:
    """An id for a message that arrived without one: random, or the next of `seeded_message_ids` when one is active."""
    source = _ID_SOURCE.get()
    return source() if source is not None else "m-" + uuid.uuid4().hex[:20]


@contextlib.contextmanager
def seeded_message_ids(seed: str) -> Iterator[None]:
    """Within this block (this thread or task's context), messages without an id get ids derived from `seed` and a
    counter instead of random ones.

    Why: ids are shown to the model (block headers, recall answers), and their tokens differ from id to id, so random
    ids make two runs of the same benchmark task differ in fold and page boundaries and sometimes in the outcome.
    Same seed and same sequence of messages -> same ids. Ids stay unique within a store only if seeds are."""
    counter = itertools.count()

    def next_id() -> str:
        return "m-" + hashlib.sha256(f"{seed}\x00{next(counter)}".encode()).hexdigest()[:20]

    token = _ID_SOURCE.set(next_id)
    try:
        yield
    finally:
        _ID_SOURCE.reset(token)


def message_text(message: Message) -> str:
    """All human-readable text of a message: content parts and tool-call arguments (used for search and tokens)."""
    parts: list[str] = []
    content = message.content
    if isinstance(content, str):
        parts.append(content)
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, Mapping) and isinstance(part.get("text"), str):
                parts.append(part["text"])
    for tc in message.tool_calls:
        parts.append(f"{tc.name}({tc.arguments})")
    return "\n".join(parts)


def _parse_tool_call(raw: Any, *, index: int | None, message_id: str | None, position: int,
                     lenient: bool = False) -> tuple[ToolCall, bool]:
    """One tool call, and whether its arguments are not valid JSON (only accepted when `lenient`)."""
    if not isinstance(raw, Mapping):
        raise InvalidMessageError(f"tool_calls[{position}] must be an object, got {type(raw).__name__}",
                                  index=index, message_id=message_id)
    fn = raw.get("function")
    if isinstance(fn, Mapping):  # OpenAI shape
        name, arguments = fn.get("name"), fn.get("arguments", "{}")
    else:  # flat shape used by recorded trajectories: {"id", "name", "arguments"}
        name, arguments = raw.get("name"), raw.get("arguments", "{}")
    call_id = raw.get("id")
    if not isinstance(call_id, str) or not call_id:
        raise InvalidMessageError(f"tool_calls[{position}] has no string id", index=index, message_id=message_id)
    if not isinstance(name, str) or not name:
        raise InvalidMessageError(f"tool_calls[{position}] ({call_id}) has no function name",
                                  index=index, message_id=message_id)
    if isinstance(arguments, Mapping):
        arguments = json.dumps(arguments, ensure_ascii=False)
    if not isinstance(arguments, str):
        raise InvalidMessageError(f"tool_calls[{position}] ({call_id}) arguments must be JSON text, "
                                  f"got {type(arguments).__name__}", index=index, message_id=message_id)
    try:
        json.loads(arguments or "{}")
    except json.JSONDecodeError as exc:
        if lenient:
            return ToolCall(id=call_id, name=name, arguments=arguments), True
        raise InvalidMessageError(f"tool_calls[{position}] ({call_id}) arguments are not valid JSON: {exc.msg}",
                                  index=index, message_id=message_id) from None
    return ToolCall(id=call_id, name=name, arguments=arguments), False


def _langchain_to_dict(obj: Any) -> dict[str, Any]:
    """Convert a LangChain BaseMessage to an OpenAI dict without importing langchain at module import.

    A model reply whose tool-call arguments were not valid JSON reaches LangChain as `invalid_tool_calls` (with the
    raw argument text); it becomes a tool call with those arguments verbatim, marked malformed, so the tool result
    create_agent adds for it still has its call.
    """
    kind = getattr(obj, "type", None)
    role = {"system": "system", "human": "user", "ai": "assistant", "tool": "tool"}.get(kind)
    if role is None:
        raise InvalidMessageError(f"unsupported LangChain message type {kind!r}")
    if role == "system" and (getattr(obj, "additional_kwargs", None) or {}).get("__openai_role__") == "developer":
        role = "developer"
    out: dict[str, Any] = {"role": role, "content": obj.content}
    if getattr(obj, "id", None):
        out["id"] = obj.id
    if role == "assistant":
        calls = [{"id": tc["id"], "name": tc["name"], "arguments": json.dumps(tc.get("args", {}), ensure_ascii=False)}
                 for tc in getattr(obj, "tool_calls", None) or []]
        malformed = []
        for tc in getattr(obj, "invalid_tool_calls", None) or []:
            if tc.get("id") and tc.get("name"):
                calls.append({"id": tc["id"], "name": tc["name"], "arguments": tc.get("args") or ""})
                malformed.append(tc["id"])
        if calls:
            out["tool_calls"] = calls
        if malformed:
            out[MALFORMED_KEY] = malformed
        if out["content"] == "" and calls:
            out["content"] = None
    if role == "tool":
        out["tool_call_id"] = obj.tool_call_id
        if getattr(obj, "name", None):
            out["name"] = obj.name
    return out


def to_langchain(message: Message) -> Any:
    """Convert to a LangChain message (langchain-core is imported lazily: it is an optional extra)."""
    from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

    content = message.content if message.content is not None else ""
    if message.role == "system":
        return SystemMessage(content=content, id=message.id)
    if message.role == "developer":
        return SystemMessage(content=content, id=message.id, additional_kwargs={"__openai_role__": "developer"})
    if message.role == "user":
        return HumanMessage(content=content, id=message.id)
    if message.role == "tool":
        return ToolMessage(content=content, tool_call_id=message.tool_call_id or "", name=message.name, id=message.id)
    calls, invalid = [], []
    for tc in message.tool_calls:
        if tc.id in message.malformed_arguments:
            invalid.append({"id": tc.id, "name": tc.name, "args": tc.arguments, "error": "arguments are not valid JSON",
                            "type": "invalid_tool_call"})
            continue
        args = json.loads(tc.arguments or "{}")
        calls.append({"id": tc.id, "name": tc.name, "args": args if isinstance(args, dict) else {"value": args}})
    return AIMessage(content=content, tool_calls=calls, invalid_tool_calls=invalid, id=message.id)


__all__.append("to_langchain")


def parse_message(raw: Any, *, index: int | None = None, message_id: str | None = None,
                  reply: bool = False) -> Message:
    """Validate one message given as a dict (OpenAI or flat tool-call shape), a Message or a LangChain message.

    Raises InvalidMessageError naming the index/id and the problem. Keys beyond the OpenAI ones (`cache_control`
    and other provider keys) are kept and sent back unchanged; keys whose value is None are dropped.

    `reply=True` is for a model's reply, which has already been paid for: tool-call arguments that are not valid
    JSON are then kept verbatim (and marked) instead of raising. Such a message, stored, loads again; an agent that
    passes it back as a plain dict gets the InvalidMessageError naming it (LangChain's `invalid_tool_calls` form is
    accepted).
    """
    if isinstance(raw, Message):
        return raw
    if not isinstance(raw, Mapping):
        if hasattr(raw, "type") and hasattr(raw, "content"):
            raw = _langchain_to_dict(raw)
        elif hasattr(raw, "model_dump"):  # litellm Message / pydantic objects
            raw = raw.model_dump()
        else:
            raise InvalidMessageError(f"expected a dict, got {type(raw).__name__}", index=index)
    mid = raw.get("id") if isinstance(raw.get("id"), str) and raw.get("id") else message_id
    if mid is not None and len(mid) > MAX_ID_LENGTH:  # the store's id column holds 200 characters
        raise InvalidMessageError(f"id is {len(mid)} characters long; at most {MAX_ID_LENGTH} are allowed",
                                  index=index, message_id=mid[:40] + "…")
    role = raw.get("role")
    if role not in _ROLES:
        raise InvalidMessageError(f"unknown role {role!r} (expected one of {', '.join(_ROLES)})",
                                  index=index, message_id=mid)
    content = raw.get("content")
    if content is not None and not isinstance(content, (str, list)):
        raise InvalidMessageError(f"content must be text, a list of parts or null, got {type(content).__name__}",
                                  index=index, message_id=mid)
    if isinstance(content, list):
        for p, part in enumerate(content):
            if not isinstance(part, Mapping) or not isinstance(part.get("type"), str):
                raise InvalidMessageError(f"content part {p} must be an object with a 'type'",
                                          index=index, message_id=mid)
            if not all(isinstance(k, str) for k in part):
                raise InvalidMessageError(f"content part {p} has a key that is not text", index=index, message_id=mid)
        content = [dict(part) for part in content]
    raw_calls = raw.get("tool_calls") or []
    if raw_calls and role != "assistant":
        raise InvalidMessageError(f"only assistant messages may carry tool_calls (role is {role})",
                                  index=index, message_id=mid)
    if not isinstance(raw_calls, (list, tuple)):
        raise InvalidMessageError("tool_calls must be a list", index=index, message_id=mid)
    marked = raw.get(MALFORMED_KEY) or ()
    if not isinstance(marked, (list, tuple)) or not all(isinstance(x, str) for x in marked):
        raise InvalidMessageError(f"{MALFORMED_KEY} must be a list of tool call ids", index=index, message_id=mid)
    parsed = [_parse_tool_call(c, index=index, message_id=mid, position=i, lenient=reply or bool(marked))
              for i, c in enumerate(raw_calls)]
    calls = tuple(c for c, _ in parsed)
    malformed = tuple(c.id for c, bad in parsed if bad)
    if set(malformed) - set(marked) and not reply:  # marked messages may only carry the calls they name
        bad = next(c for c in malformed if c not in marked)
        raise InvalidMessageError(f"tool call ({bad}) arguments are not valid JSON", index=index, message_id=mid)
    if len({c.id for c in calls}) != len(calls):
        raise InvalidMessageError("duplicate tool call ids in one message", index=index, message_id=mid)
    tool_call_id = raw.get("tool_call_id")
    if role == "tool":
        if not isinstance(tool_call_id, str) or not tool_call_id:
            raise InvalidMessageError("tool message has no tool_call_id", index=index, message_id=mid)
    elif tool_call_id is not None:
        raise InvalidMessageError(f"tool_call_id is only allowed on tool messages (role is {role})",
                                  index=index, message_id=mid)
    name = raw.get("name")
    if name is not None and not isinstance(name, str):
        raise InvalidMessageError("name must be text", index=index, message_id=mid)
    if role == "assistant" and content is None and not calls:
        content = ""
    provider_keys = {k: v for k, v in raw.items() if k not in _KNOWN_KEYS and k != MALFORMED_KEY
                     and v is not None and v != {} and v != []}
    if not all(isinstance(k, str) for k in provider_keys):
        raise InvalidMessageError("message has a key that is not text", index=index, message_id=mid)
    try:
        message = Message(id=mid or new_message_id(), role=role, content=content, tool_calls=calls,
                          tool_call_id=tool_call_id, name=name, provider_keys=provider_keys,
                          malformed_arguments=malformed)
    except ValidationError as exc:  # a safety net: the checks above should have named the problem already
        raise InvalidMessageError(f"invalid message: {exc.errors()[0]['msg']}", index=index, message_id=mid) from None
    try:  # the store keeps UTF-8 JSON: fail here, naming the message, rather than deep inside the store
        message.canonical_json().encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidMessageError(f"text is not valid UTF-8 (lone surrogate at position {exc.start} of the "
                                  "message JSON)", index=index, message_id=mid) from None
    except (TypeError, ValueError) as exc:
        raise InvalidMessageError(f"content is not JSON-serializable: {exc}", index=index, message_id=mid) from None
    return message


def parse_messages(raws: Iterable[Any], *, validate: bool = True) -> list[Message]:
    """Parse a whole history; with validate=True also check the pairing invariants (see validate_history)."""
    if isinstance(raws, (str, bytes)) or not isinstance(raws, Iterable):
        raise InvalidMessageError(f"messages must be a list, got {type(raws).__name__}")
    out = [parse_message(r, index=i) for i, r in enumerate(raws)]
    seen: dict[str, int] = {}
    for i, m in enumerate(out):
        if m.id in seen:
            raise InvalidMessageError(f"duplicate message id (also at index {seen[m.id]})", index=i, message_id=m.id)
        seen[m.id] = i
    if validate:
        validate_history(out, allow_open_tail=True)
    return out


class Round(BaseModel):
    """An indivisible unit of history: one message, or an assistant message plus all its tool results."""

    model_config = ConfigDict(frozen=True)

    ids: tuple[str, ...]
    role: Role
    complete: bool = True  # False for an assistant turn whose tool results have not all arrived yet


def group_rounds(messages: Sequence[Message]) -> list[Round]:
    """Split a history into units that primitives may move or replace as a whole."""
    rounds: list[Round] = []
    i, n = 0, len(messages)
    while i < n:
        m = messages[i]
        if m.role == "assistant" and m.tool_calls:
            pending = set(m.tool_call_ids)
            ids = [m.id]
            j = i + 1
            while j < n and messages[j].role == "tool" and messages[j].tool_call_id in pending:
                pending.discard(messages[j].tool_call_id)
                ids.append(messages[j].id)
                j += 1
            rounds.append(Round(ids=tuple(ids), role="assistant", complete=not pending))
            i = j
        else:
            rounds.append(Round(ids=(m.id,), role=m.role))
            i += 1
    return rounds


def _as_dict(item: Any) -> Mapping[str, Any]:
    if isinstance(item, Message):
        return item.to_dict(with_id=True)
    if isinstance(item, Mapping):
        return item
    raise HistoryError(f"expected a message dict, got {type(item).__name__}")


def validate_history(
    history: Sequence[Any],
    *,
    allow_open_tail: bool = False,
    order: Mapping[str, int] | None = None,
    system_first: str | None = None,
) -> None:
    """Check every invariant a provider (or replay) relies on. Raises HistoryError naming the first violation.

    - every assistant tool call is followed, before any other non-tool message, by exactly one result;
    - every tool result answers a call of the assistant message right before its block;
    - no system message after the first position (a leading system message stays first);
    - if `system_first` (an id) is given, the view must start with that message;
    - if `order` (id → ingest position) is given, original messages appear in ingest order.

    `allow_open_tail` accepts a final assistant turn whose results have not arrived yet (a live history).
    """
    pending: dict[str, int] = {}
    last_pos = -1
    for i, item in enumerate(history):
        d = _as_dict(item)
        role = d.get("role")
        mid = d.get("id") if isinstance(d.get("id"), str) else None
        if role not in _ROLES:
            raise HistoryError(f"unknown role {role!r}", index=i, message_id=mid)
        if i == 0 and system_first is not None and mid != system_first:
            raise HistoryError(f"the leading system message {system_first!r} is not first", index=i, message_id=mid)
        if role == "system" and i != 0:
            raise HistoryError("system message is not at the start of the history", index=i, message_id=mid)
        if role == "tool":
            call_id = d.get("tool_call_id")
            if not isinstance(call_id, str) or call_id not in pending:
                raise HistoryError(f"tool result {call_id!r} has no matching tool call right before it",
                                   index=i, message_id=mid)
            del pending[call_id]
        else:
            if pending:
                missing = ", ".join(sorted(pending))
                raise HistoryError(f"tool call(s) {missing} have no result before this {role} message",
                                   index=i, message_id=mid)
            if role == "assistant":
                calls = d.get("tool_calls") or []
                if not isinstance(calls, (list, tuple)):
                    raise HistoryError("tool_calls must be a list", index=i, message_id=mid)
                for p, tc in enumerate(calls):
                    tc_id = tc.id if isinstance(tc, ToolCall) else tc.get("id") if isinstance(tc, Mapping) else None
                    if not isinstance(tc_id, str) or not tc_id:
                        raise HistoryError(f"tool_calls[{p}] has no string id", index=i, message_id=mid)
                    if tc_id in pending:
                        raise HistoryError(f"duplicate tool call id {tc_id!r}", index=i, message_id=mid)
                    pending[tc_id] = i
        if order is not None and mid is not None and mid in order:
            pos = order[mid]
            if pos <= last_pos:
                raise HistoryError("message out of its original order", index=i, message_id=mid)
            last_pos = pos
    if pending and not allow_open_tail:
        missing = ", ".join(sorted(pending))
        raise HistoryError(f"tool call(s) {missing} have no result at the end of the history",
                           index=len(history) - 1)


def response_message(response: Any) -> dict[str, Any]:
    """The assistant message of a litellm/OpenAI-style response (object or dict), as an OpenAI dict."""
    if isinstance(response, Mapping):
        choices = response.get("choices")
    else:
        choices = getattr(response, "choices", None)
    if not choices:
        raise InvalidMessageError("model response has no choices")
    first = choices[0]
    msg = first.get("message") if isinstance(first, Mapping) else getattr(first, "message", None)
    if msg is None:
        raise InvalidMessageError("model response choice has no message")
    if not isinstance(msg, Mapping):
        msg = msg.model_dump() if hasattr(msg, "model_dump") else dict(vars(msg))
    out: dict[str, Any] = {"role": msg.get("role") or "assistant", "content": msg.get("content")}
    calls = msg.get("tool_calls")
    if calls:
        norm = []
        for c in calls:
            c = c if isinstance(c, Mapping) else c.model_dump()
            fn = c.get("function") or {"name": c.get("name"), "arguments": c.get("arguments")}  # flat shape
            fn = fn if isinstance(fn, Mapping) else fn.model_dump()
            norm.append({"id": c.get("id"), "type": "function",
                         "function": {"name": fn.get("name"), "arguments": fn.get("arguments") or "{}"}})
        out["tool_calls"] = norm
    return out
