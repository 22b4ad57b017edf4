"""evict: content leaves the view, a one-line stub stays (id, tool name, size, preview); the store keeps it all.

The stub keeps the message's role and tool pairing, so the view stays valid for strict providers.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from agentmem.messages import message_text
from agentmem.tokens import TokenCounter
from agentmem.view import STUB_HEADER, Event, EventError, MessageItem, View, apply_event

from ._common import tool_names

__all__ = ["EvictConfig", "evict", "stub_text"]


class EvictConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    preview_chars: int = Field(default=100, ge=0, le=1000)


def stub_text(item: MessageItem, tool_name: str | None, preview_chars: int) -> str:
    msg = item.message
    preview = " ".join(message_text(msg).split())[:preview_chars]
    what = f"{tool_name} output" if msg.role == "tool" else f"{msg.role} message"
    return (f"{STUB_HEADER} {what} id={msg.id}, {item.tokens} tokens; recall_memory(ids=[\"{msg.id}\"]) brings it "
            f"back] preview: {json.dumps(preview, ensure_ascii=False)}")


def evict(view: View, *, ids: Sequence[str], counter: TokenCounter, config: EvictConfig = EvictConfig(),
          meta: dict[str, Any] | None = None) -> tuple[View, Event]:
    """Replace the named original messages with stubs. Pure: `view` is not changed."""
    if not ids:
        raise EventError("evict needs at least one id")
    names = tool_names(view)
    index = view.index()
    stubs: dict[str, str] = {}
    freed = 0
    for mid in dict.fromkeys(ids):
        i = index.get(mid)
        item = view.items[i] if i is not None else None
        if not isinstance(item, MessageItem):
            raise EventError(f"cannot evict {mid!r}: not an original message in the view")
        name = names.get(item.message.tool_call_id or "") or item.message.name
        stubs[mid] = stub_text(item, name, config.preview_chars)
        freed += item.tokens
    event = Event(seq=view.next_seq, kind="evict", covers=tuple(stubs), text="", after_message=view.message_count,
                  meta={"stubs": stubs, "evicted_tokens": freed, **(meta or {})})
    return apply_event(view, event, counter), event
