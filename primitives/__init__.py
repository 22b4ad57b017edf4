"""The memory primitives: pure functions over a view, each with its pydantic config beside it.

Adding a primitive touches its own file and one line of REGISTRY.
"""

from .evict import EvictConfig, evict
from .fold import FoldConfig, extractive_summary, fold
from .recall import RecallConfig, format_archive, recall, unrecall
from .summarize import EmptyThinkingError, SummarizeConfig, summarize_by_thinking, thinking_request

REGISTRY = {
    "fold": (FoldConfig, fold),
    "summarize": (SummarizeConfig, summarize_by_thinking),
    "evict": (EvictConfig, evict),
    "recall": (RecallConfig, recall),
    "unrecall": (RecallConfig, unrecall),
}

__all__ = [
    "REGISTRY",
    "FoldConfig",
    "fold",
    "extractive_summary",
    "SummarizeConfig",
    "summarize_by_thinking",
    "thinking_request",
    "EmptyThinkingError",
    "EvictConfig",
    "evict",
    "RecallConfig",
    "recall",
    "unrecall",
    "format_archive",
]
