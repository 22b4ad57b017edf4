"""A deterministic offline chat model for real create_agent graphs: a script decides each reply from the messages.

It is a real BaseChatModel (LangChain runs it, streams it, records it in checkpoints); it records every request it
gets (messages, tools, and whether it ran sync or async), which is what the tests check.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult


class ScriptedChatModel(BaseChatModel):
    """Replies with `script(messages, call_index)`; records each request in `calls`."""

    script: Callable[[list[BaseMessage], int], AIMessage]
    calls: list = []
    bound_tools: list = []
    model_name: str = "gpt-4o"

    @property
    def _llm_type(self) -> str:
        return "scripted-chat-model"

    def bind_tools(self, tools: Any, **kwargs: Any) -> ScriptedChatModel:
        self.bound_tools = list(tools)
        return self

    def _reply(self, messages: list[BaseMessage], mode: str) -> ChatResult:
        self.calls.append({"messages": list(messages), "tools": list(self.bound_tools), "mode": mode})
        return ChatResult(generations=[ChatGeneration(message=self.script(list(messages), len(self.calls) - 1))])

    def _generate(self, messages: list[BaseMessage], stop=None, run_manager=None, **kwargs: Any) -> ChatResult:
        return self._reply(messages, "sync")

    async def _agenerate(self, messages: list[BaseMessage], stop=None, run_manager=None,
                         **kwargs: Any) -> ChatResult:
        return self._reply(messages, "async")


def scripted(script: Callable[[list[BaseMessage], int], AIMessage], **kwargs: Any) -> ScriptedChatModel:
    model = ScriptedChatModel(script=script, **kwargs)
    model.calls = []
    return model


def call_then_answer(name: str, args: dict[str, Any], answer: str, *, call_id: str = "c0"
                     ) -> Callable[[list[BaseMessage], int], AIMessage]:
    """A script: the first reply calls one tool, every later reply is `answer`."""

    def script(messages: list[BaseMessage], i: int) -> AIMessage:
        if i == 0:
            return AIMessage(content="", tool_calls=[{"id": call_id, "name": name, "args": args}])
        return AIMessage(content=answer)

    return script
