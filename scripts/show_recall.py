"""Print the first recall_memory call of a run (`agentmem run --transcripts --out DIR`) and the start of its answer."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(out_dir: str) -> int:
    for path in sorted(Path(out_dir, "transcripts").glob("*.json")):
        messages = json.loads(path.read_text())
        messages = messages.get("messages", messages) if isinstance(messages, dict) else messages
        answers = {m.get("tool_call_id"): m for m in messages if m.get("role") == "tool"}
        calls = [(m, c) for m in messages if m.get("role") == "assistant" for c in m.get("tool_calls") or []
                 if c["function"]["name"] == "recall_memory"]
        if not calls:
            print(f"{path.stem}: no recall_memory call (everything the agent needed stayed in its view)")
            continue
        msg, call = calls[0]
        turn = sum(1 for m in messages[: messages.index(msg)] if m.get("role") == "assistant")
        answer = answers.get(call["id"], {}).get("content", "")
        print(f"{path.stem}: {len(calls)} recall_memory call(s); the first, at turn {turn}:")
        print(f"  thought:  {msg.get('content', '')[:200]}")
        print(f"  call:     recall_memory({call['function']['arguments']})")
        print("  answer:   " + "\n            ".join(answer.splitlines()[:6]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "out/demo"))
