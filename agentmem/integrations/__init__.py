"""Framework surfaces (LangGraph). Imported lazily: each needs its optional extra."""

__all__ = ["MemoryHook"]


def __getattr__(name: str):
    if name == "MemoryHook":
        from agentmem.integrations.langgraph import MemoryHook

        return MemoryHook
    raise AttributeError(name)
