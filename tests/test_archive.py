"""agentmem.archive: exact look-ups ranked first, every answer pageable to its end, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re

from agentmem import AgentMemory
from agentmem.memory import recall_tool_schema
from agentmem.archive import ArchiveQuery, find_archived, recall_text
from agentmem.messages import parse_message
from agentmem.tokens import TokenCounter
from agentmem.view import View

COUNTER = TokenCounter()


def _history(n_playlists: int = 12, pages: int = 3) -> list[dict]:
    """A music agent's transcript: many near-identical calls (the hard case for bm25), then a long output."""
    msgs: list[dict] = [{"role": "system", "content": "sys"}, {"role": "user", "content": "find the common song"}]
    k = 0
    for pid in range(1, n_playlists + 1):
        for page in range(pages):
            k += 1
            args = {"access_token": "at-music-0123456789ab", "playlist_id": pid, "page_index": page}
            msgs.append({"role": "assistant", "content": f"step {k}", "tool_calls": [
                {"id": f"c{k}", "type": "function", "function": {"name": "call_api", "arguments": json.dumps(
                    {"app": "music", "api": "show_playlist_songs", "arguments": args})}}]})
            items = [{"song_id": 100 * pid + 10 * page + j, "title": f"Song {pid}-{page}-{j}"} for j in range(5)]
            msgs.append({"role": "tool", "tool_call_id": f"c{k}", "content": json.dumps(
                {"app": "music", "api": "show_playlist_songs", "args": {"playlist_id": pid, "page_index": page},
                 "status": "ok", "response": {"items": items, "page_index": page, "has_more": page < pages - 1}})})
    long_lines = [f"line {i}: nothing to see here, just padding for the file" for i in range(400)]
    long_lines.append("the vault code is ZEBRA-4411")
    msgs.append({"role": "assistant", "content": "read the file", "tool_calls": [
        {"id": "cf", "type": "function", "function": {"name": "call_api", "arguments": json.dumps(
            {"app": "file_system", "api": "show_file", "arguments": {"path": "/notes/long.txt"}})}}]})
    msgs.append({"role": "tool", "tool_call_id": "cf", "content": "\n".join(long_lines)})
    return msgs


def _stored(store, session_id, msgs):
    parsed = [parse_message(m, index=i) for i, m in enumerate(msgs)]
    store.append_messages(session_id, parsed, [COUNTER.message(m) for m in parsed])
    return parsed


def _first_tool(found):
    return next(m for m in found if m.role == "tool")


def test_query_parsing():
    q = ArchiveQuery('show_playlist_songs playlist_id 17 page_index 0 "Total: $41.20"')
    assert q.call_names == ["show_playlist_songs"] and q.phrases == ["Total: $41.20"]
    assert ArchiveQuery("login username a@b.com").call_names == ["login"]
    assert ArchiveQuery("create_task title Sort recycling").call_names == ["create_task"]


def test_exact_call_lookups_rank_first_where_bm25_does_not(any_store, session_id):
    msgs = _history()
    _stored(any_store, session_id, msgs)
    exact_ok = fts_ok = total = 0
    for pid in range(1, 13):
        for page in range(3):
            total += 1
            query = f"show_playlist_songs page_index {page} playlist_id {pid}"  # argument order as the issue wrote
            found = find_archived(any_store, session_id, View(), query=query)
            env = json.loads(_first_tool(found).content)
            exact_ok += env["args"] == {"playlist_id": pid, "page_index": page}
            hits = any_store.search(session_id, query, limit=4)
            fts_ok += bool(hits) and f'"playlist_id": {pid}, "page_index": {page}}}' in hits[0].body
    assert exact_ok == total
    assert fts_ok < total  # what full-text search alone found (the bug this fixes)
    # naming fewer arguments finds every such call, in session order (the newest reading comes last)
    found = find_archived(any_store, session_id, View(), query="show_playlist_songs playlist_id 7")
    pages = [json.loads(m.content)["args"]["page_index"] for m in found if m.role == "tool"
             and m.content.startswith("{")][:3]
    assert pages == [0, 1, 2]
    # a value given that differs from the call's: not an exact match for that call
    found = find_archived(any_store, session_id, View(), query="show_playlist_songs playlist_id 99")
    assert not any(m.role == "tool" and '"playlist_id": 99' in m.content for m in found)


def test_the_end_of_a_long_output_is_reachable_by_paging(any_store, session_id):
    msgs = _history(n_playlists=1, pages=1)
    parsed = _stored(any_store, session_id, msgs)
    long_id = parsed[-1].id
    pages, page = [], 1
    while True:
        text = recall_text(any_store, session_id, View(), counter=COUNTER, ids=[long_id], page=page, page_tokens=600)
        assert COUNTER.text(text) <= 600
        pages.append(text)
        m = re.search(r"(\d+) more message\(s\) \((\d+) tokens\) on (\d+) more page\(s\).*page=(\d+)\]$", text)
        if not m:
            break
        assert int(m.group(4)) == page + 1
        page += 1
    assert len(pages) > 3 and "ZEBRA-4411" in pages[-1] and "ZEBRA-4411" not in pages[0]
    assert all(f"--- {long_id} (tool) part " in p for p in pages)
    # the quoted phrase finds the message straight away
    found = find_archived(any_store, session_id, View(), query='"vault code is ZEBRA"')
    assert found[0].id == long_id or _first_tool(found).id == long_id
    # a page past the end says so
    assert "does not exist" in recall_text(any_store, session_id, View(), counter=COUNTER, ids=[long_id], page=99)


def test_recall_tool_pages_a_block_through_all_it_covers(tmp_path):
    msgs = _history(n_playlists=8, pages=2)
    mem = AgentMemory(lambda **kw: {"choices": [{"message": {"role": "assistant", "content": "ok"}}]},
                      policy="budget", budget_tokens=2000, recall_tool=True, store=tmp_path / "a.db")
    mem.completion(model="m", messages=msgs[:-2])
    blocks = [it for it in mem.session.view.items if type(it).__name__ == "BlockItem"]
    assert blocks
    blk = blocks[0]
    seen, page = [], 1
    while True:
        text = mem.execute_recall({"ids": [blk.key], "page": page})
        seen += re.findall(r"^--- (m\S+) ", text, flags=re.M)
        if f"page={page + 1}]" not in text:
            break
        page += 1
    assert page > 1 and list(dict.fromkeys(seen)) == list(blk.covers)
    assert mem.execute_recall({"ids": [blk.key], "page": 0}).startswith("[agentmem: recall_memory 'page'")
    schema = recall_tool_schema()["function"]
    assert "page" in schema["parameters"]["properties"] and "page=" in schema["description"]
