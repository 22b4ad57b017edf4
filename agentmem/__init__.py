"""agentmem: explicit memory middleware for long-horizon LLM agents.

Every message is stored byte-exact; a policy decides memory actions (fold, summarize-by-thinking, evict, recall);
primitives apply them; the view the model gets is a pure replay of the event log.
"""

from __future__ import annotations

from agentmem.actions import Action, EvictAction, FoldAction, RecallAction, UnrecallAction
from agentmem.memory import RECALL_TOOL_NAME, AgentMemory, recall_tool_schema
from agentmem.messages import (
    HistoryError,
    InvalidMessageError,
    Message,
    ToolCall,
    group_rounds,
    parse_message,
    parse_messages,
    validate_history,
)
from agentmem.session import MemorySession, RoundStats
from agentmem.store import ConcurrentWriteError, Store, StoreError
from agentmem.thinkers.base import Thinker, ThinkerError, ThinkRequest, ThinkResult
from agentmem.tokens import TokenCounter
from agentmem.view import Event, EventError, View, apply_event, build_view

__version__ = "0.1.0"

__all__ = [
    "AgentMemory",
    "MemorySession",
    "RoundStats",
    "Store",
    "StoreError",
    "ConcurrentWriteError",
    "Message",
    "ToolCall",
    "InvalidMessageError",
    "HistoryError",
    "parse_message",
    "parse_messages",
    "group_rounds",
    "validate_history",
    "TokenCounter",
    "View",
    "Event",
    "EventError",
    "apply_event",
    "build_view",
    "Action",
    "FoldAction",
    "EvictAction",
    "RecallAction",
    "UnrecallAction",
    "Thinker",
    "ThinkerError",
    "ThinkRequest",
    "ThinkResult",
    "RECALL_TOOL_NAME",
    "recall_tool_schema",
    "__version__",
]
