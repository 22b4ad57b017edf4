"""Framework surfaces (LangChain create_agent middleware, LangGraph hook). Imported lazily: each needs its extra."""

__all__ = ["AgentMemoryMiddleware", "MemoryHook"]


def __getattr__(name: str):
    if name == "MemoryHook":
        from agentmem.integrations.langgraph import MemoryHook

        return MemoryHook
    if name == "AgentMemoryMiddleware":
        from agentmem.integrations.langchain import AgentMemoryMiddleware

        return AgentMemoryMiddleware
    raise AttributeError(name)
