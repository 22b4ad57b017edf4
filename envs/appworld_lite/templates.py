"""Easy and medium task templates (the hard ones live in templates_hard.py)."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from datetime import timedelta
from typing import Any

from .framework import World, money
from .scripted import KB, C, Complete, Each, Pages, Single, prelude
from .seed import RELATION_ROLES, SeedContext, add_expense, add_todo
from .tasks import Solution, TaskTemplate

# ------------------------------------------------------------------------------------------------ helpers


def contacts(kb: KB) -> list[dict]:
    return kb.pages("phone", "show_contacts")


def contact_by_role(kb: KB, role: str) -> dict | None:
    return next((c for c in contacts(kb) if c.get("relationship") == role), None)


def inbox(kb: KB) -> list[dict]:
    return kb.pages("email", "show_inbox")


def playlists(kb: KB) -> list[dict]:
    return kb.pages("music", "show_playlist_library")


def playlist_id(kb: KB, title: str) -> int | None:
    return next((p["playlist_id"] for p in playlists(kb) if p["title"] == title), None)


def group_id(kb: KB, name: str) -> int | None:
    return next((g["group_id"] for g in kb.pages("expenses", "show_groups") if g["name"] == name), None)


def line_value(text: str | None, label: str) -> str | None:
    """The value of a 'Label: value' line in a text."""
    if not text:
        return None
    m = re.search(rf"^{re.escape(label)}:\s*(.+?)\s*$", text, flags=re.M)
    return m.group(1) if m else None


def dollars(s: str | None) -> float | None:
    if s is None:
        return None
    m = re.search(r"-?\d[\d,]*\.?\d*", s)
    return float(m.group(0).replace(",", "")) if m else None


def user_row(w: World) -> dict:
    return w.q("SELECT * FROM supervisor_profile WHERE id = 1")[0]


def role_person(w: World, role: str) -> dict:
    return w.q("SELECT * FROM phone_contacts WHERE relationship = ?", (role,))[0]


MESSAGES = ["Running 10 minutes late, sorry!", "Can you pick up milk on your way home?", "Dinner at 7 tonight?",
            "Don't forget the keys", "Call me when you land", "The package arrived", "Movie night on Friday?"]
NEW_TODOS = ["Buy concert tickets", "Email the landlord", "Pick up dry cleaning", "Book a haircut",
             "Renew car insurance", "Plan team offsite", "Write blog post", "Sort recycling"]
NOTES_FOR_PAYMENT = ["Concert tickets", "Groceries", "Utilities share", "Birthday gift", "Cab ride", "Lunch"]

# ================================================================================================== EASY


class TodoAddTask(TaskTemplate):
    name = "todo_add_task"
    difficulty = "easy"
    apps = ("todo",)

    @staticmethod
    def setup(ctx: SeedContext) -> dict:
        title = ctx.rng.choice(NEW_TODOS)
        due = (ctx.today_date + timedelta(days=ctx.rng.randint(2, 20))).isoformat()
        prio = ctx.rng.choice(["low", "medium", "high"])
        return {"title": title, "due": due, "priority": prio,
                "instruction": f"Add a task titled '{title}' to my todo list, due on {due}, with {prio} priority."}

    @staticmethod
    def oracle(w: World, p: dict) -> Solution:
        return Solution([("todo", "create_task", {"title": p["title"], "due_date": p["due"],
                                                  "priority": p["priority"]})])

    @staticmethod
    def plan(p: dict) -> list:
        return [*prelude(["todo"]),
                Single(C("todo", "create_task", title=p["title"], due_date=p["due"], priority=p["priority"])),
                Complete()]


class PhoneTextRelation(TaskTemplate):
    name = "phone_text_relation"
    difficulty = "easy"
    apps = ("phone",)

    @staticmethod
    def setup(ctx: SeedContext) -> dict:
        role = ctx.rng.choice(RELATION_ROLES)
        msg = ctx.rng.choice(MESSAGES)
        return {"role": role, "message": msg, "instruction": f"Send a text message saying '{msg}' to my {role}."}

    @staticmethod
    def oracle(w: World, p: dict) -> Solution:
        return Solution([("phone", "send_text_message", {"phone_number": role_person(w, p["role"])["phone_number"],
                                                         "text": p["message"]})])

    @staticmethod
    def plan(p: dict) -> list:
        def send(kb: KB) -> Any:
            c = contact_by_role(kb, p["role"])
            return c and C("phone", "send_text_message", phone_number=c["phone_number"], text=p["message"])

        return [*prelude(["phone"]), Pages("phone", "show_contacts"), Single(send), Complete()]


class PaymentsSendRelation(TaskTemplate):
    name = "payments_send_relation"
    difficulty = "easy"
    apps = ("phone", "payments")

    @staticmethod
    def setup(ctx: SeedContext) -> dict:
        role = ctx.rng.choice(RELATION_ROLES)
        amount = ctx.rng.randint(1000, 20000) / 100
        note = ctx.rng.choice(NOTES_FOR_PAYMENT)
        return {"role": role, "amount": amount, "note": note,
                "instruction": f"Send ${amount:.2f} to my {role} on payments with the note '{note}'."}

    @staticmethod
    def oracle(w: World, p: dict) -> Solution:
        return Solution([("payments", "send_money", {"receiver_email": role_person(w, p["role"])["email"],
                                                     "amount": p["amount"], "note": p["note"]})])

    @staticmethod
    def plan(p: dict) -> list:
        def send(kb: KB) -> Any:
            c = contact_by_role(kb, p["role"])
            return c and C("payments", "send_money", receiver_email=c["email"], amount=p["amount"], note=p["note"])

        return [*prelude(["phone", "payments"]), Pages("phone", "show_contacts"), Single(send), Complete()]


class PaymentsRequestRelation(TaskTemplate):
    name = "payments_request_relation"
    difficulty = "easy"
    apps = ("phone", "payments")

    @staticmethod
    def setup(ctx: SeedContext) -> dict:
        role = ctx.rng.choice(RELATION_ROLES)
        amount = ctx.rng.randint(1500, 12000) / 100
        note = ctx.rng.choice(NOTES_FOR_PAYMENT)
        return {"role": role, "amount": amount, "note": note,
                "instruction": f"Request ${amount:.2f} from my {role} on payments with the note '{note}'."}

    @staticmethod
    def oracle(w: World, p: dict) -> Solution:
        return Solution([("payments", "request_money", {"user_email": role_person(w, p["role"])["email"],
                                                        "amount": p["amount"], "note": p["note"]})])

    @staticmethod
    def plan(p: dict) -> list:
        def req(kb: KB) -> Any:
            c = contact_by_role(kb, p["role"])
            return c and C("payments", "request_money", user_email=c["email"], amount=p["amount"], note=p["note"])

        return [*prelude(["phone", "payments"]), Pages("phone", "show_contacts"), Single(req), Complete()]


class NotesAppendLine(TaskTemplate):
    name = "notes_append_line"
    difficulty = "easy"
    apps = ("notes",)

    @staticmethod
    def setup(ctx: SeedContext) -> dict:
        notes = ctx.world.q("SELECT note_id, title FROM notes_notes ORDER BY note_id")
        title = ctx.rng.choice(notes)["title"]
        line = f"- {ctx.rng.choice(['call', 'check', 'buy', 'ask about'])} {ctx.song_title().lower()}"
        return {"title": title, "line": line,
                "instruction": f"Add the line '{line}' at the end of my note titled '{title}' (on a new line)."}

    @staticmethod
    def oracle(w: World, p: dict) -> Solution:
        n = w.q("SELECT * FROM notes_notes WHERE title = ?", (p["title"],))[0]
        return Solution([("notes", "update_note", {"note_id": n["note_id"],
                                                   "content": n["content"] + "\n" + p["line"]})])

    @staticmethod
    def plan(p: dict) -> list:
        def nid(kb: KB) -> int | None:
            return next((n["note_id"] for n in kb.pages("notes", "show_notes") if n["title"] == p["title"]), None)

        def show(kb: KB) -> Any:
            i = nid(kb)
            return i and C("notes", "show_note", note_id=i)

        def update(kb: KB) -> Any:
            i = nid(kb)
            note = i and kb.get("notes", "show_note", note_id=i)
            return note and C("notes", "update_note", note_id=i, content=note["content"] + "\n" + p["line"])

        return [*prelude(["notes"]), Pages("notes", "show_notes"), Single(show), Single(update), Complete()]


class FsWifiPassword(TaskTemplate):
    name = "fs_wifi_password"
    difficulty = "easy"
    apps = ("file_system",)

    @staticmethod
    def setup(ctx: SeedContext) -> dict:
        rng = ctx.rng
        pw = "".join(rng.choice("abcdefghkmnpqrstuvwxyz23456789") for _ in range(12))
        fname = rng.choice(["wifi_details.txt", "home_wifi.txt", "router_wifi.txt"])
        for name in ("lease.txt", "insurance.md", "appliances.txt", "neighbors.txt", fname, "moving_checklist.md"):
            content = (f"network: {rng.choice(['HomeNet', 'Casa', 'Nest'])}-{rng.randint(10, 99)}\npassword: {pw}\n"
                       if name == fname else f"{rng.choice(['Notes', 'Info', 'Details'])} about {name[:-4]}")
            ctx.world.insert("file_system_files", path=f"~/documents/home/{name}", content=content,
                             created_at=ctx.ts(40), updated_at=ctx.ts(3))
        return {"password": pw, "instruction": "What is the wifi password written in the wifi file in my "
                                               "~/documents/home folder? Answer with the password only."}

    @staticmethod
    def oracle(w: World, p: dict) -> Solution:
        return Solution([], p["password"])

    @staticmethod
    def plan(p: dict) -> list:
        def path(kb: KB) -> str | None:
            return next((e["path"] for e in kb.pages("file_system", "show_directory", directory="~/documents/home")
                         if "wifi" in e["name"]), None)

        def show(kb: KB) -> Any:
            x = path(kb)
            return x and C("file_system", "show_file", path=x)

        def answer(kb: KB) -> Any:
            x = path(kb)
            f = x and kb.get("file_system", "show_file", path=x)
            return line_value(f and f["content"], "password")

        return [*prelude(["file_system"]), Pages("file_system", "show_directory", {"directory": "~/documents/home"}),
                Single(show), Complete(answer)]


class MusicLikeArtistInPlaylist(TaskTemplate):
    name = "music_like_artist_in_playlist"
    difficulty = "easy"
    apps = ("music",)
    sizes = {"playlists": 12, "playlist_min": 8, "playlist_max": 13}

    @staticmethod
    def setup(ctx: SeedContext) -> dict:
        w, rng = ctx.world, ctx.rng
        pl = rng.choice(w.q("SELECT * FROM music_playlists ORDER BY playlist_id"))
        songs = w.q("SELECT s.* FROM music_playlist_songs ps JOIN music_songs s ON s.song_id = ps.song_id "
                    "WHERE ps.playlist_id = ?", (pl["playlist_id"],))
        artist = rng.choice(sorted({s["artist"] for s in songs}))
        have = {s["song_id"] for s in songs}
        extra = [r["song_id"] for r in w.q("SELECT song_id FROM music_songs WHERE artist = ? ORDER BY song_id",
                                           (artist,)) if r["song_id"] not in have]
        pos = len(songs)
        for sid in extra[: max(0, 3 - sum(s["artist"] == artist for s in songs))]:
            pos += 1
            w.insert("music_playlist_songs", playlist_id=pl["playlist_id"], song_id=sid, position=pos)
        return {"title": pl["title"], "artist": artist,
                "instruction": f"Like every song by {artist} in my playlist '{pl['title']}'."}

    @staticmethod
    def oracle(w: World, p: dict) -> Solution:
        rows = w.q("SELECT s.song_id FROM music_playlist_songs ps JOIN music_songs s ON s.song_id = ps.song_id "
                   "JOIN music_playlists p ON p.playlist_id = ps.playlist_id WHERE p.title = ? AND s.artist = ?",
                   (p["title"], p["artist"]))
        return Solution([("music", "like_song", {"song_id": r["song_id"]}) for r in rows])

    @staticmethod
    def plan(p: dict) -> list:
        def args(kb: KB) -> dict | None:
            pid = playlist_id(kb, p["title"])
            return None if pid is None else {"playlist_id": pid}

        def targets(kb: KB) -> list[int]:
            a = args(kb)
            return [] if a is None else [s["song_id"] for s in kb.pages("music", "show_playlist_songs", **a)
                                         if s["artist"] == p["artist"]]

        return [*prelude(["music"]), Pages("music", "show_playlist_library"),
                Pages("music", "show_playlist_songs", args),
                Each(targets, lambda kb, sid: C("music", "like_song", song_id=sid), "like"), Complete()]


class EmailCountFrom(TaskTemplate):
    name = "email_count_from"
    difficulty = "easy"
    apps = ("email",)
    sizes = {"inbox": 22}

    @staticmethod
    def setup(ctx: SeedContext) -> dict:
        w, rng = ctx.world, ctx.rng
        person = rng.choice(ctx.people)
        for _ in range(rng.randint(3, 6)):
            w.insert("email_messages", folder="inbox", sender=person.email, sender_name=person.name,
                     recipients=json.dumps([ctx.user.email]), subject=rng.choice(["Hello", "Update", "Plans", "Hi!"]),
                     body="Just checking in.", sent_at=ctx.ts(rng.uniform(1, 60)))
        return {"name": person.name, "instruction": f"How many emails in my inbox are from {person.name}?"}

    @staticmethod
    def oracle(w: World, p: dict) -> Solution:
        n = w.q("SELECT COUNT(*) AS n FROM email_messages WHERE folder = 'inbox' AND sender_name = ?",
                (p["name"],))[0]["n"]
        return Solution([], n)

    @staticmethod
    def plan(p: dict) -> list:
        return [*prelude(["email"]), Pages("email", "show_inbox"),
                Complete(lambda kb: sum(e["sender_name"] == p["name"] for e in inbox(kb)))]


class ExpensesAddEqualSplit(TaskTemplate):
    name = "expenses_add_equal_split"
    difficulty = "easy"
    apps = ("expenses",)
    sizes = {"groups": 6, "group_expenses": 3}

    @staticmethod
    def setup(ctx: SeedContext) -> dict:
        g = ctx.rng.choice(ctx.world.q("SELECT * FROM expenses_groups ORDER BY group_id"))
        desc = ctx.rng.choice(["Pizza night", "Cleaning supplies", "Museum tickets", "Firewood", "Board game"])
        amount = ctx.rng.randint(2000, 16000) / 100
        return {"group": g["name"], "description": desc, "amount": amount,
                "instruction": f"Add an expense '{desc}' of ${amount:.2f} that I paid to my '{g['name']}' group on "
                               f"the expenses app, split equally among all members."}

    @staticmethod
    def oracle(w: World, p: dict) -> Solution:
        gid = w.q("SELECT group_id FROM expenses_groups WHERE name = ?", (p["group"],))[0]["group_id"]
        return Solution([("expenses", "add_expense", {"group_id": gid, "description": p["description"],
                                                      "amount": p["amount"]})])

    @staticmethod
    def plan(p: dict) -> list:
        def add(kb: KB) -> Any:
            gid = group_id(kb, p["group"])
            return gid and C("expenses", "add_expense", group_id=gid, description=p["description"],
                             amount=p["amount"])

        return [*prelude(["expenses"]), Pages("expenses", "show_groups"), Single(add), Complete()]


class TodoCountDueWeek(TaskTemplate):
    name = "todo_count_due_week"
    difficulty = "easy"
    apps = ("todo",)
    sizes = {"todos": 22}

    @staticmethod
    def setup(ctx: SeedContext) -> dict:
        for t in ctx.rng.sample(NEW_TODOS, 3):
            add_todo(ctx, t, due_days=ctx.rng.randint(0, 6), completed=False)
        end = (ctx.today_date + timedelta(days=6)).isoformat()
        return {"start": ctx.today_date.isoformat(), "end": end,
                "instruction": f"How many incomplete tasks on my todo list are due between today and {end} "
                               f"(both included)?"}

    @staticmethod
    def oracle(w: World, p: dict) -> Solution:
        n = w.q("SELECT COUNT(*) AS n FROM todo_tasks WHERE completed = 0 AND due_date >= ? AND due_date <= ?",
                (p["start"], p["end"]))[0]["n"]
        return Solution([], n)

    @staticmethod
    def plan(p: dict) -> list:
        return [*prelude(["todo"]), Pages("todo", "show_tasks"),
                Complete(lambda kb: sum(1 for t in kb.pages("todo", "show_tasks") if not t["completed"]
                                        and t["due_date"] and p["start"] <= t["due_date"] <= p["end"]))]


# ================================================================================================ MEDIUM


class EmailDeleteFromSender(TaskTemplate):
    name = "email_delete_from_sender"
    difficulty = "medium"
    apps = ("email",)
    sizes = {"inbox": 40}

    @staticmethod
    def setup(ctx: SeedContext) -> dict:
        w, rng = ctx.world, ctx.rng
        person = rng.choice(ctx.people)
        for _ in range(rng.randint(4, 7)):
            w.insert("email_messages", folder="inbox", sender=person.email, sender_name=person.name,
                     recipients=json.dumps([ctx.user.email]), subject=rng.choice(["Offer", "Hey", "Following up"]),
                     body="...", sent_at=ctx.ts(rng.uniform(1, 80)))
        return {"name": person.name, "instruction": f"Delete every email in my inbox from {person.name}."}

    @staticmethod
    def oracle(w: World, p: dict) -> Solution:
        rows = w.q("SELECT email_id FROM email_messages WHERE folder = 'inbox' AND sender_name = ?", (p["name"],))
        return Solution([("email", "delete_email", {"email_id": r["email_id"]}) for r in rows])

    @staticmethod
    def plan(p: dict) -> list:
        return [*prelude(["email"]), Pages("email", "show_inbox"),
                Each(lambda kb: [e["email_id"] for e in inbox(kb) if e["sender_name"] == p["name"]],
                     lambda kb, i: C("email", "delete_email", email_id=i), "delete"), Complete()]


class PaymentsHandleRequests(TaskTemplate):
    name = "payments_handle_requests"
    difficulty = "medium"
    apps = ("phone", "payments")
    sizes = {"contacts": 25}

    @staticmethod
    def setup(ctx: SeedContext) -> dict:
        rng, w = ctx.rng, ctx.world
        friends = [p for p in ctx.contacts if p.relationship == "friend"]
        others = [p for p in ctx.people if p.relationship != "friend"]
        chosen = rng.sample(friends, min(len(friends), rng.randint(3, 5))) + rng.sample(others, rng.randint(4, 6))
        rng.shuffle(chosen)
        for p in chosen:
            w.insert("payments_requests", requester_email=p.email, payer_email=ctx.user.email,
                     amount_cents=rng.randint(800, 6000), note=rng.choice(["Pizza", "Concert", "Taxi", "Brunch"]),
                     status="pending", created_at=ctx.ts(rng.uniform(0.5, 20)))
        return {"instruction": "Approve every pending payment request from people listed as 'friend' in my phone "
                               "contacts, and deny every other pending payment request."}

    @staticmethod
    def oracle(w: World, p: dict) -> Solution:
        friends = {r["email"] for r in w.q("SELECT email FROM phone_contacts WHERE relationship = 'friend'")}
        calls = []
        for r in w.q("SELECT * FROM payments_requests WHERE status = 'pending' ORDER BY request_id"):
            api_name = "approve_payment_request" if r["requester_email"] in friends else "deny_payment_request"
            calls.append(("payments", api_name, {"request_id": r["request_id"]}))
        return Solution(calls)

    @staticmethod
    def plan(p: dict) -> list:
        friends = Pages("phone", "show_contacts", keep=lambda kb, acc, r: acc + [
            c["email"] for c in r.get("items", []) if c["relationship"] == "friend"], init=[])
        requests = Pages("payments", "show_payment_requests", {"status": "pending"}, keep=lambda kb, acc, r: acc + [
            [x["request_id"], x["requester_email"]] for x in r.get("items", [])], init=[])

        def act(kb: KB, r: list) -> Any:
            api_name = "approve_payment_request" if r[1] in kb.acc(friends) else "deny_payment_request"
            return C("payments", api_name, request_id=r[0])

        return [*prelude(["phone", "payments"]), friends, requests,
                Each(lambda kb: kb.take(requests), act, "handle", queue=True), Complete()]
class TodoCompleteOverdueHigh(TaskTemplate):
    name = "todo_complete_overdue_high"
    difficulty = "medium"
    apps = ("todo",)
    sizes = {"todos": 25}

    @staticmethod
    def setup(ctx: SeedContext) -> dict:
        for t in ctx.rng.sample(NEW_TODOS, 4):
            add_todo(ctx, t, due_days=-ctx.rng.randint(1, 15), priority="high", completed=False)
        for t in ctx.rng.sample(NEW_TODOS, 4):
            add_todo(ctx, t + " (later)", due_days=ctx.rng.randint(-10, 10))
        return {"today": ctx.today_date.isoformat(),
                "instruction": f"Mark as done every incomplete high-priority task on my todo list that is overdue "
                               f"(due before today, {ctx.today_date.isoformat()})."}

    @staticmethod
    def oracle(w: World, p: dict) -> Solution:
        rows = w.q("SELECT task_id FROM todo_tasks WHERE completed = 0 AND priority = 'high' AND due_date < ?",
                   (p["today"],))
        return Solution([("todo", "mark_task_done", {"task_id": r["task_id"]}) for r in rows])

    @staticmethod
    def plan(p: dict) -> list:
        def targets(kb: KB) -> list[int]:
            return [t["task_id"] for t in kb.pages("todo", "show_tasks") if not t["completed"]
                    and t["priority"] == "high" and t["due_date"] and t["due_date"] < p["today"]]

        return [*prelude(["todo"]), Pages("todo", "show_tasks"),
                Each(targets, lambda kb, i: C("todo", "mark_task_done", task_id=i), "mark done"), Complete()]


class MusicPlaylistMinutes(TaskTemplate):
    name = "music_playlist_minutes"
    difficulty = "medium"
    apps = ("music",)
    sizes = {"playlists": 12, "playlist_min": 10, "playlist_max": 14}

    @staticmethod
    def setup(ctx: SeedContext) -> dict:
        pl = ctx.rng.choice(ctx.world.q("SELECT * FROM music_playlists ORDER BY playlist_id"))
        return {"title": pl["title"], "instruction": f"What is the total duration of my playlist '{pl['title']}' in "
                                                     f"minutes, rounded down to a whole number?"}

    @staticmethod
    def oracle(w: World, p: dict) -> Solution:
        s = w.q("SELECT SUM(s.duration_s) AS d FROM music_playlist_songs ps JOIN music_songs s ON s.song_id = "
                "ps.song_id JOIN music_playlists p ON p.playlist_id = ps.playlist_id WHERE p.title = ?",
                (p["title"],))[0]["d"]
        return Solution([], s // 60)

    @staticmethod
    def plan(p: dict) -> list:
        def args(kb: KB) -> dict | None:
            pid = playlist_id(kb, p["title"])
            return None if pid is None else {"playlist_id": pid}

        def songs(kb: KB) -> list[int]:
            a = args(kb)
            return [] if a is None else [s["song_id"] for s in kb.pages("music", "show_playlist_songs", **a)]

        details = Each(songs, lambda kb, sid: C("music", "show_song", song_id=sid), "song details")

        def answer(kb: KB) -> int:
            total = 0
            for sid in details.list(kb):
                s = kb.get("music", "show_song", song_id=sid)
                total += s["duration_s"] if s else 0
            return total // 60

        return [*prelude(["music"]), Pages("music", "show_playlist_library"),
                Pages("music", "show_playlist_songs", args), details, Complete(answer)]


class EmailForwardLatest(TaskTemplate):
    name = "email_forward_latest"
    difficulty = "medium"
    apps = ("email", "phone")
    sizes = {"inbox": 35}

    @staticmethod
    def setup(ctx: SeedContext) -> dict:
        rng, w = ctx.rng, ctx.world
        person = rng.choice(ctx.non_contacts())
        word = rng.choice(["invoice", "contract", "itinerary", "report"])
        role = rng.choice(RELATION_ROLES)
        days = sorted(rng.sample(range(1, 60), 6))
        for i, d in enumerate(days):
            subj = f"The {word} for {rng.choice(['March', 'Q3', 'the project', 'our trip'])}" if i % 2 == 0 \
                else rng.choice(["Lunch?", "Quick update", "Photos"])
            w.insert("email_messages", folder="inbox", sender=person.email, sender_name=person.name,
                     recipients=json.dumps([ctx.user.email]), subject=subj, body=f"Details inside ({i}).",
                     sent_at=ctx.ts(d))
        return {"name": person.name, "word": word, "role": role,
                "instruction": f"Forward the most recent email from {person.name} whose subject mentions '{word}' "
                               f"to my {role}."}

    @staticmethod
    def oracle(w: World, p: dict) -> Solution:
        e = w.q("SELECT email_id FROM email_messages WHERE folder = 'inbox' AND sender_name = ? AND "
                "LOWER(subject) LIKE ? ORDER BY sent_at DESC, email_id DESC LIMIT 1",
                (p["name"], f"%{p['word']}%"))[0]
        return Solution([("email", "forward_email", {"email_id": e["email_id"],
                                                     "recipients": [role_person(w, p["role"])["email"]]})])

    @staticmethod
    def plan(p: dict) -> list:
        # while paging, note the matching e-mails (the inbox is long; the candidates are few)
        matching = Pages("email", "show_inbox", keep=lambda kb, acc, r: acc + [
            [e["sent_at"], e["email_id"]] for e in r.get("items", [])
            if e["sender_name"] == p["name"] and p["word"] in e["subject"].lower()], init=[])

        def fwd(kb: KB) -> Any:
            cands = kb.acc(matching)
            c = contact_by_role(kb, p["role"])
            if not cands or not c:
                return None
            return C("email", "forward_email", email_id=max(cands)[1], recipients=[c["email"]])

        return [*prelude(["email", "phone"]), matching, Pages("phone", "show_contacts"), Single(fwd), Complete()]


class PhoneBirthdayTexts(TaskTemplate):
    name = "phone_birthday_texts"
    difficulty = "medium"
    apps = ("phone",)
    sizes = {"contacts": 38, "people": 44}

    @staticmethod
    def setup(ctx: SeedContext) -> dict:
        md = ctx.today_date.strftime("%m-%d")
        for r in ctx.rng.sample(ctx.world.q("SELECT contact_id FROM phone_contacts ORDER BY contact_id"),
                                ctx.rng.randint(2, 4)):
            ctx.world.x("UPDATE phone_contacts SET birthday = ? WHERE contact_id = ?",
                        (f"{ctx.rng.choice([1984, 1988, 1992, 1996])}-{md}", r["contact_id"]))
        return {"md": md, "instruction": "Send the text 'Happy birthday, <their first name>!' (e.g. 'Happy "
                                         "birthday, Alice!') to every contact whose birthday is today."}

    @staticmethod
    def oracle(w: World, p: dict) -> Solution:
        rows = w.q("SELECT * FROM phone_contacts WHERE substr(birthday, 6) = ?", (p["md"],))
        return Solution([("phone", "send_text_message", {"phone_number": r["phone_number"],
                                                         "text": f"Happy birthday, {r['first_name']}!"})
                         for r in rows])

    @staticmethod
    def plan(p: dict) -> list:
        return [*prelude(["phone"]), Pages("phone", "show_contacts"),
                Each(lambda kb: [c for c in contacts(kb) if (c.get("birthday") or "")[5:] == p["md"]],
                     lambda kb, c: C("phone", "send_text_message", phone_number=c["phone_number"],
                                     text=f"Happy birthday, {c['first_name']}!"), "texts"),
                Complete()]


RECIPES = ["Lemon Pasta", "Chickpea Curry", "Banana Bread", "Shakshuka", "Miso Soup", "Pad Thai", "Apple Crumble",
           "Tomato Risotto", "Fish Tacos", "Pumpkin Pie", "Greek Salad", "Ramen", "Falafel", "Paella"]


class NotesRecipeIndex(TaskTemplate):
    name = "notes_recipe_index"
    difficulty = "medium"
    apps = ("notes",)
    sizes = {"notes": 18}

    @staticmethod
    def setup(ctx: SeedContext) -> dict:
        rng, w = ctx.rng, ctx.world
        for title in rng.sample(RECIPES, rng.randint(6, 9)):
            tags = ["recipe"] + (["favorites"] if rng.random() < 0.3 else [])
            w.insert("notes_notes", title=title, content=f"Ingredients for {title}...", tags=json.dumps(tags),
                     pinned=0, created_at=ctx.ts(rng.uniform(5, 200)), updated_at=ctx.ts(2))
        for i in range(8):
            w.insert("notes_notes", title=f"Journal {i + 1}", content="Dear diary...",
                     tags=json.dumps(["journal"] if i % 3 else ["recipes-to-try"]), pinned=0,
                     created_at=ctx.ts(rng.uniform(5, 200)), updated_at=ctx.ts(2))
        return {"instruction": "Create a note titled 'Recipe Index' whose content lists the titles of all my notes "
                               "tagged 'recipe', one per line, in alphabetical order, and nothing else."}

    @staticmethod
    def oracle(w: World, p: dict) -> Solution:
        titles = sorted(r["title"] for r in w.q("SELECT title, tags FROM notes_notes")
                        if "recipe" in json.loads(r["tags"]))
        return Solution([("notes", "create_note", {"title": "Recipe Index", "content": "\n".join(titles)})])

    @staticmethod
    def plan(p: dict) -> list:
        return [*prelude(["notes"]), Pages("notes", "show_notes"),
                Single(lambda kb: C("notes", "create_note", title="Recipe Index", content="\n".join(
                    sorted(n["title"] for n in kb.pages("notes", "show_notes") if "recipe" in n["tags"])))),
                Complete()]


class FsMovePdfs(TaskTemplate):
    name = "fs_move_pdfs"
    difficulty = "medium"
    apps = ("file_system",)

    @staticmethod
    def setup(ctx: SeedContext) -> dict:
        rng, w = ctx.rng, ctx.world
        n_pdf = rng.randint(6, 9)
        names = [f"{rng.choice(['scan', 'report', 'ticket', 'manual', 'invoice', 'statement'])}_{i}.pdf"
                 for i in range(n_pdf)]
        names += [f"{rng.choice(['setup', 'photo', 'notes', 'archive', 'song'])}_{i}."
                  f"{rng.choice(['zip', 'png', 'txt', 'dmg', 'mp3'])}" for i in range(rng.randint(14, 18))]
        for n in names:
            w.insert("file_system_files", path=f"~/downloads/{n}", content=f"data of {n}", created_at=ctx.ts(9),
                     updated_at=ctx.ts(2))
        w.insert("file_system_files", path="~/downloads/old/receipt_2019.pdf", content="old", created_at=ctx.ts(99),
                 updated_at=ctx.ts(90))
        w.insert("file_system_files", path="~/documents/pdfs/handbook.pdf", content="handbook",
                 created_at=ctx.ts(99), updated_at=ctx.ts(90))
        return {"instruction": "Move every .pdf file that is directly inside ~/downloads (not in its sub-folders) "
                               "into the folder ~/documents/pdfs, keeping the file names."}

    @staticmethod
    def oracle(w: World, p: dict) -> Solution:
        rows = w.q("SELECT path FROM file_system_files WHERE path LIKE '~/downloads/%.pdf' ORDER BY path")
        calls = []
        for r in rows:
            rest = r["path"][len("~/downloads/"):]
            if "/" not in rest:
                calls.append(("file_system", "move_file", {"source_path": r["path"],
                                                           "destination_path": f"~/documents/pdfs/{rest}"}))
        return Solution(calls)

    @staticmethod
    def plan(p: dict) -> list:
        def pdfs(kb: KB) -> list[dict]:
            return [e for e in kb.pages("file_system", "show_directory", directory="~/downloads")
                    if e["type"] == "file" and e["name"].endswith(".pdf")]

        return [*prelude(["file_system"]), Pages("file_system", "show_directory", {"directory": "~/downloads"}),
                Each(pdfs, lambda kb, e: C("file_system", "move_file", source_path=e["path"],
                                           destination_path=f"~/documents/pdfs/{e['name']}"), "move"),
                Complete()]


def owed_to_user(w: World, gid: int, user_email: str) -> dict[str, int]:
    """Per member (not the user): cents they owe the user in group gid (negative: the user owes them)."""
    bal: dict[str, int] = defaultdict(int)
    for e in w.q("SELECT * FROM expenses_expenses WHERE group_id = ?", (gid,)):
        for s in w.q("SELECT * FROM expenses_shares WHERE expense_id = ?", (e["expense_id"],)):
            if e["paid_by"] == user_email and s["email"] != user_email:
                bal[s["email"]] += s["share_cents"]
            elif e["paid_by"] != user_email and s["email"] == user_email:
                bal[e["paid_by"]] -= s["share_cents"]
    for st in w.q("SELECT * FROM expenses_settlements WHERE group_id = ?", (gid,)):
        if st["payer_email"] == user_email:
            bal[st["payee_email"]] += st["amount_cents"]
        elif st["payee_email"] == user_email:
            bal[st["payer_email"]] -= st["amount_cents"]
    for m in w.q("SELECT email FROM expenses_members WHERE group_id = ?", (gid,)):
        if m["email"] != user_email:
            bal.setdefault(m["email"], 0)
    return dict(bal)


def kb_owed_to_user(kb: KB, gid: int, user_email: str) -> dict[str, int]:
    """The same balance, computed from what the agent has seen (cents)."""
    bal: dict[str, int] = defaultdict(int)
    for e in kb.pages("expenses", "show_group_expenses", group_id=gid):
        d = kb.get("expenses", "show_expense", expense_id=e["expense_id"])
        if not d:
            continue
        for s in d["shares"]:
            c = int(round(s["share"] * 100))
            if d["paid_by"] == user_email and s["email"] != user_email:
                bal[s["email"]] += c
            elif d["paid_by"] != user_email and s["email"] == user_email:
                bal[d["paid_by"]] -= c
    for st in kb.pages("expenses", "show_settlements", group_id=gid):
        c = int(round(st["amount"] * 100))
        if st["payer_email"] == user_email:
            bal[st["payee_email"]] += c
        elif st["payee_email"] == user_email:
            bal[st["payer_email"]] -= c
    return dict(bal)


def group_expense_ids(kb: KB, gid: int | None) -> list[int]:
    return [] if gid is None else [e["expense_id"] for e in kb.pages("expenses", "show_group_expenses",
                                                                      group_id=gid)]


class ExpensesTopDebtor(TaskTemplate):
    name = "expenses_top_debtor"
    difficulty = "medium"
    apps = ("expenses",)
    sizes = {"groups": 2}

    @staticmethod
    def setup(ctx: SeedContext) -> dict:
        rng, w = ctx.rng, ctx.world
        gname = "Housemates"
        gid = w.insert("expenses_groups", name=gname)
        members = [ctx.user, *rng.sample(ctx.people, 4)]
        for m in members:
            w.insert("expenses_members", group_id=gid, email=m.email, name=m.name)
        for _ in range(rng.randint(11, 15)):
            add_expense(ctx, gid, members, rng.choice(members[:1] * 2 + members[1:]),
                        rng.choice(["Rent top-up", "Internet", "Groceries", "Cleaner", "Electricity", "Takeout"]),
                        rng.randint(2000, 20000), ctx.ts(rng.uniform(2, 120)))
        w.insert("expenses_settlements", group_id=gid, payer_email=members[1].email, payee_email=ctx.user.email,
                 amount_cents=rng.randint(1000, 3000), created_at=ctx.ts(5))
        while True:
            bal = owed_to_user(w, gid, ctx.user.email)
            ranked = sorted(bal.items(), key=lambda kv: -kv[1])
            if ranked[0][1] > 0 and ranked[0][1] - ranked[1][1] >= 100:
                break
            top = ranked[0][0]
            add_expense(ctx, gid, members, ctx.user, "Concert tickets", 9000, ctx.ts(1),
                        split={ctx.user.email: 3000, top: 6000})
        name = w.q("SELECT name FROM expenses_members WHERE group_id = ? AND email = ?", (gid, ranked[0][0]))[0]["name"]
        return {"group": gname, "answer": name,
                "instruction": f"In my '{gname}' group on the expenses app, which member owes me the most money "
                               f"overall (counting all expenses and settlements)? Answer with their full name."}

    @staticmethod
    def oracle(w: World, p: dict) -> Solution:
        return Solution([], p["answer"])

    @staticmethod
    def plan(p: dict) -> list:
        groups = Pages("expenses", "show_groups", keep=lambda kb, acc, r: next(
            (g["group_id"] for g in r.get("items", []) if g["name"] == p["group"]), acc))

        def gid_args(kb: KB) -> dict | None:
            g = kb.acc(groups)
            return None if g is None else {"group_id": g}

        members = Single(lambda kb: (lambda a: a and C("expenses", "show_group", **a))(gid_args(kb)),
                         keep=lambda kb, acc, r: {m["email"]: m["name"] for m in r.get("members", [])}, init={})
        exp = Pages("expenses", "show_group_expenses", gid_args,
                    keep=lambda kb, acc, r: acc + [e["expense_id"] for e in r.get("items", [])], init=[])

        def bump(acc: dict, email: str, c: int) -> dict:
            acc[email] = acc.get(email, 0) + c
            return acc

        def expense(kb: KB, acc: dict, i: int, d: dict) -> dict:
            me = kb.profile()["email"]
            for sh in d.get("shares", []):
                c = int(round(sh["share"] * 100))
                if d["paid_by"] == me and sh["email"] != me:
                    bump(acc, sh["email"], c)
                elif d["paid_by"] != me and sh["email"] == me:
                    bump(acc, d["paid_by"], -c)
            return acc

        details = Each(lambda kb: kb.take(exp), lambda kb, i: C("expenses", "show_expense", expense_id=i),
                       "expense details", keep=expense, init={}, queue=True)

        def settle(kb: KB, acc: dict, r: dict) -> dict:
            me = kb.profile()["email"]
            for st in r.get("items", []):
                c = int(round(st["amount"] * 100))
                if st["payer_email"] == me:
                    bump(acc, st["payee_email"], c)
                elif st["payee_email"] == me:
                    bump(acc, st["payer_email"], -c)
            return acc

        settlements = Pages("expenses", "show_settlements", gid_args, keep=settle, init={})

        def answer(kb: KB) -> Any:
            bal = dict(kb.acc(details))
            for e, c in kb.acc(settlements).items():
                bal[e] = bal.get(e, 0) + c
            if not bal:
                return None
            top = max(sorted(bal), key=lambda e: bal[e])
            return kb.acc(members).get(top, top)

        return [*prelude(["expenses"]), groups, members, exp, details, settlements, Complete(answer)]
class PaymentsReceivedLastMonth(TaskTemplate):
    name = "payments_received_last_month"
    difficulty = "medium"
    apps = ("payments",)

    @staticmethod
    def setup(ctx: SeedContext) -> dict:
        rng, w = ctx.rng, ctx.world
        first, last, label = ctx.last_month()
        for _ in range(rng.randint(40, 50)):
            p = rng.choice(ctx.people)
            incoming = rng.random() < 0.55
            w.insert("payments_transactions", sender_email=p.email if incoming else ctx.user.email,
                     receiver_email=ctx.user.email if incoming else p.email, amount_cents=rng.randint(300, 9000),
                     note=rng.choice(["Dinner", "Rent share", "Tickets", "Coffee", "Books"]),
                     created_at=ctx.ts(rng.uniform(0.2, 75)))
        return {"first": first.isoformat(), "last": last.isoformat(), "month": label,
                "instruction": f"How much money did I receive on payments in total during {label}? Answer with the "
                               f"number only."}

    @staticmethod
    def oracle(w: World, p: dict) -> Solution:
        user = user_row(w)["email"]
        s = w.q("SELECT COALESCE(SUM(amount_cents), 0) AS c FROM payments_transactions WHERE receiver_email = ? AND "
                "substr(created_at, 1, 10) >= ? AND substr(created_at, 1, 10) <= ?",
                (user, p["first"], p["last"]))[0]["c"]
        return Solution([], money(s))

    @staticmethod
    def plan(p: dict) -> list:
        def add(kb: KB, acc: int, r: dict) -> int:
            me = kb.profile()["email"]
            return acc + sum(int(round(t["amount"] * 100)) for t in r.get("items", [])
                             if t["receiver_email"] == me and p["first"] <= t["created_at"][:10] <= p["last"])

        tx = Pages("payments", "show_transactions", keep=add, init=0)
        return [*prelude(["payments"]), tx, Complete(lambda kb: money(kb.acc(tx)))]
class MusicMostPlayed(TaskTemplate):
    name = "music_most_played"
    difficulty = "medium"
    apps = ("music",)
    sizes = {"library": 24}

    @staticmethod
    def setup(ctx: SeedContext) -> dict:
        return {"instruction": "Which song in my music library have I played the most? Answer with its title."}

    @staticmethod
    def oracle(w: World, p: dict) -> Solution:
        r = w.q("SELECT s.title FROM music_library l JOIN music_songs s ON s.song_id = l.song_id "
                "ORDER BY l.play_count DESC LIMIT 1")[0]
        return Solution([], r["title"])

    @staticmethod
    def plan(p: dict) -> list:
        lib = Pages("music", "show_song_library", keep=lambda kb, acc, r: acc + [s["song_id"] for s in r.get("items", [])],
                    init=[])

        def best(kb: KB, acc: list, sid: int, s: dict) -> list:
            return acc + [[s["play_count"], s["title"]]]  # the most played is picked when all are read

        details = Each(lambda kb: kb.take(lib), lambda kb, sid: C("music", "show_song", song_id=sid), "song details",
                       keep=best, init=[], queue=True)

        def most_played(kb: KB) -> Any:
            seen = kb.acc(details)
            return max(seen, key=lambda x: x[0])[1] if seen else None  # the first of equals, as the scan kept it

        return [*prelude(["music"]), lib, details, Complete(most_played)]
class MusicGenrePlaylist(TaskTemplate):
    name = "music_genre_playlist"
    difficulty = "medium"
    apps = ("music",)
    sizes = {"library": 36}

    @staticmethod
    def setup(ctx: SeedContext) -> dict:
        rows = ctx.world.q("SELECT s.genre, COUNT(*) AS n FROM music_library l JOIN music_songs s ON s.song_id = "
                           "l.song_id GROUP BY s.genre HAVING n BETWEEN 3 AND 8 ORDER BY s.genre")
        genre = ctx.rng.choice(rows)["genre"]
        title = f"{genre.title()} Mix"
        return {"genre": genre, "title": title,
                "instruction": f"Create a playlist titled '{title}' containing every {genre} song in my music "
                               f"library (and no other song)."}

    @staticmethod
    def oracle(w: World, p: dict) -> Solution:
        new_id = w.q("SELECT COALESCE(MAX(playlist_id), 0) + 1 AS n FROM music_playlists")[0]["n"]
        calls = [("music", "create_playlist", {"title": p["title"]})]
        for r in w.q("SELECT s.song_id FROM music_library l JOIN music_songs s ON s.song_id = l.song_id "
                      "WHERE s.genre = ? ORDER BY s.song_id", (p["genre"],)):
            calls.append(("music", "add_song_to_playlist", {"playlist_id": new_id, "song_id": r["song_id"]}))
        return Solution(calls)

    @staticmethod
    def plan(p: dict) -> list:
        def new_pid(kb: KB) -> int | None:
            r = kb.get("music", "create_playlist", title=p["title"])
            return r and r["playlist_id"]

        def add(kb: KB, sid: int) -> Any:
            pid = new_pid(kb)
            return pid and C("music", "add_song_to_playlist", playlist_id=pid, song_id=sid)

        return [*prelude(["music"]), Pages("music", "show_song_library"),
                Single(C("music", "create_playlist", title=p["title"])),
                Each(lambda kb: [s["song_id"] for s in kb.pages("music", "show_song_library")
                                 if s["genre"] == p["genre"]], add, "add songs"),
                Complete()]


from . import templates_hard  # noqa: E402,F401  (registers the hard templates)
