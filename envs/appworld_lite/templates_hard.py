"""Hard task templates: each needs 80+ rounds of a competent agent, with values carried across them."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from datetime import timedelta
from typing import Any

from .framework import World, money
from .scripted import KB, C, Complete, Each, EachPages, Pages, Single, prelude
from .seed import SeedContext
from .tasks import Solution, TaskTemplate

# ------------------------------------------------------------------------------------------------ helpers


def _inbox(kb: KB) -> list[dict]:
    return kb.pages("email", "show_inbox")


def _line(text: str | None, label: str) -> str | None:
    from .templates import line_value

    return line_value(text, label)


def _dollars(s: str | None) -> float | None:
    from .templates import dollars

    return dollars(s)


def _email(ctx: SeedContext, sender: str, name: str, subject: str, body: str, sent_at: str) -> int:
    return ctx.world.insert("email_messages", folder="inbox", sender=sender, sender_name=name,
                            recipients=json.dumps([ctx.user.email]), subject=subject, body=body, sent_at=sent_at)


def _filler_emails(ctx: SeedContext, n: int, max_days: float = 70) -> None:
    """Ordinary mail that makes the inbox long."""
    rng = ctx.rng
    subjects = ["Weekly newsletter", "Your order has shipped", "Meeting moved", "Photos!", "Re: plans",
                "Security alert", "Invitation to connect", "Sale ends tonight", "Question about Friday",
                "Library reminder", "Quarterly update", "Welcome aboard", "Re: Receipt question"]
    for _ in range(n):
        p = rng.choice(ctx.people)
        _email(ctx, p.email, p.name, rng.choice(subjects), "Hello! Nothing important here.",
               ctx.ts(rng.uniform(0.2, max_days)))


SHOPS = [("FreshMart", "groceries"), ("GreenGrocer", "groceries"), ("Bistro Nova", "dining"),
         ("Pizza Place", "dining"), ("TechHub", "electronics"), ("StyleCo", "clothing"), ("RailGo", "travel"),
         ("BookNook", "books")]


def _receipt(ctx: SeedContext, when: str, shared: bool | None = None) -> None:
    rng = ctx.rng
    shop, cat = rng.choice(SHOPS)
    order = rng.randint(10000, 99999)
    amt = rng.randint(500, 25000)
    shared_line = "" if shared is None else f"Shared: {'yes' if shared else 'no'}\n"
    body = (f"Thank you for shopping at {shop}!\nStore: {shop}\nOrder: {order}\nDate: {when[:10]}\n"
            f"Category: {cat}\n{shared_line}Total: ${money(amt):.2f}\n")
    _email(ctx, f"receipts@{shop.lower().replace(' ', '')}.com", shop, f"Receipt from {shop} (order {order})",
           body, when)


def _is_receipt(e: dict) -> bool:
    return e["subject"].startswith("Receipt from ")


def _add_ids(field: str, pred: Any = None) -> Any:
    """A Pages `keep`: carry the ids (`field`) of the page's items that match `pred` (all when None)."""
    def keep(kb: KB, acc: list, r: dict) -> list:
        return acc + [x[field] for x in r.get("items", []) if pred is None or pred(x)]
    return keep


# ================================================================================================== MUSIC


class MusicMostCommonSong(TaskTemplate):
    name = "music_most_common_song"
    difficulty = "hard"
    apps = ("music",)
    sizes = {"playlists": 26, "playlist_min": 11, "playlist_max": 15, "songs": 100}

    @staticmethod
    def setup(ctx: SeedContext) -> dict:
        w = ctx.world
        counts = Counter(r["song_id"] for r in w.q("SELECT song_id FROM music_playlist_songs"))
        top, n_top = min(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        second = max(n for s, n in counts.items() if s != top)
        pls = [r["playlist_id"] for r in w.q("SELECT playlist_id FROM music_playlists ORDER BY playlist_id")]
        missing = [pid for pid in pls if not w.q("SELECT 1 FROM music_playlist_songs WHERE playlist_id = ? AND "
                                                 "song_id = ?", (pid, top))]
        ctx.rng.shuffle(missing)
        for pid in missing[: max(0, second + 2 - n_top)]:
            pos = w.q("SELECT MAX(position) + 1 AS p FROM music_playlist_songs WHERE playlist_id = ?", (pid,))[0]["p"]
            w.insert("music_playlist_songs", playlist_id=pid, song_id=top, position=pos)
        w.x("DELETE FROM music_likes WHERE song_id = ?", (top,))
        return {"song_id": top, "instruction": "Find the song that appears in the most of my playlists, like it, "
                                               "and tell me its title."}

    @staticmethod
    def oracle(w: World, p: dict) -> Solution:
        title = w.q("SELECT title FROM music_songs WHERE song_id = ?", (p["song_id"],))[0]["title"]
        return Solution([("music", "like_song", {"song_id": p["song_id"]})], title)

    @staticmethod
    def plan(p: dict) -> list:
        lib = Pages("music", "show_playlist_library", keep=_add_ids("playlist_id"), init=[])

        def tally(kb: KB, acc: list, pid: int, r: dict) -> list:
            """The song ids of each page (a playlist holds a song once): counted when the walk is done."""
            return acc + [s["song_id"] for s in r.get("items", [])]

        songs = EachPages(lambda kb: kb.take(lib), "music", "show_playlist_songs", lambda pid: {"playlist_id": pid},
                          "playlist songs", keep=tally, init=[], queue=True)

        def top(kb: KB) -> int | None:
            counts = Counter(kb.acc(songs))
            if not counts:
                return None
            return min(counts, key=lambda sid: (-counts[sid], sid))

        def title(kb: KB) -> str | None:
            sid = top(kb)
            r = sid is not None and kb.get("music", "show_song", song_id=sid)
            return r["title"] if r else None

        return [*prelude(["music"]), lib, songs,
                Single(lambda kb: (lambda t: None if t is None else C("music", "show_song", song_id=t))(top(kb))),
                Single(lambda kb: (lambda t: None if t is None else C("music", "like_song", song_id=t))(top(kb))),
                Complete(title)]
class MusicPurgeGenre(TaskTemplate):
    name = "music_purge_genre"
    difficulty = "hard"
    apps = ("music",)
    sizes = {"playlists": 22, "playlist_min": 11, "playlist_max": 15, "songs": 120}

    @staticmethod
    def setup(ctx: SeedContext) -> dict:
        rows = ctx.world.q("SELECT s.genre, COUNT(*) AS n FROM music_playlist_songs ps JOIN music_songs s ON "
                           "s.song_id = ps.song_id GROUP BY s.genre ORDER BY n, s.genre")
        genre = next((r["genre"] for r in rows if r["n"] >= 12), rows[-1]["genre"])
        return {"genre": genre, "instruction": f"Remove every {genre} song from all of my playlists."}

    @staticmethod
    def oracle(w: World, p: dict) -> Solution:
        rows = w.q("SELECT ps.playlist_id, ps.song_id FROM music_playlist_songs ps JOIN music_songs s ON "
                   "s.song_id = ps.song_id WHERE s.genre = ?", (p["genre"],))
        return Solution([("music", "remove_song_from_playlist", dict(r)) for r in rows])

    @staticmethod
    def plan(p: dict) -> list:
        lib = Pages("music", "show_playlist_library", keep=_add_ids("playlist_id"), init=[])

        def pairs(kb: KB, acc: list, pid: int, r: dict) -> list:
            return acc + [[pid, s["song_id"]] for s in r.get("items", []) if s["genre"] == p["genre"]]

        songs = EachPages(lambda kb: kb.take(lib), "music", "show_playlist_songs", lambda pid: {"playlist_id": pid},
                          "playlist songs", keep=pairs, init=[], queue=True)
        return [*prelude(["music"]), lib, songs,
                Each(lambda kb: kb.take(songs),
                     lambda kb, x: C("music", "remove_song_from_playlist", playlist_id=x[0], song_id=x[1]),
                     "remove", queue=True),
                Complete()]
class MusicUnlikeOrphans(TaskTemplate):
    name = "music_unlike_orphans"
    difficulty = "hard"
    apps = ("music",)
    sizes = {"playlists": 19, "playlist_min": 11, "playlist_max": 15, "songs": 170, "likes": 42}

    @staticmethod
    def setup(ctx: SeedContext) -> dict:
        return {"instruction": "Unlike every song I have liked that is not in any of my playlists."}

    @staticmethod
    def oracle(w: World, p: dict) -> Solution:
        rows = w.q("SELECT song_id FROM music_likes WHERE song_id NOT IN (SELECT song_id FROM music_playlist_songs)")
        return Solution([("music", "unlike_song", {"song_id": r["song_id"]}) for r in rows])

    @staticmethod
    def plan(p: dict) -> list:
        liked = Pages("music", "show_liked_songs", keep=_add_ids("song_id"), init=[])
        lib = Pages("music", "show_playlist_library", keep=_add_ids("playlist_id"), init=[])

        def in_playlists(kb: KB, acc: list, pid: int, r: dict) -> list:
            likes = set(kb.acc(liked))  # only liked songs matter: the carried set stays small
            return acc + [s["song_id"] for s in r.get("items", []) if s["song_id"] in likes and s["song_id"] not in acc]

        songs = EachPages(lambda kb: kb.take(lib), "music", "show_playlist_songs", lambda pid: {"playlist_id": pid},
                          "playlist songs", keep=in_playlists, init=[], queue=True)

        def orphans(kb: KB) -> list[int]:
            in_pl = set(kb.take(songs))
            return [sid for sid in kb.take(liked) if sid not in in_pl]

        return [*prelude(["music"]), liked, lib, songs,
                Each(orphans, lambda kb, sid: C("music", "unlike_song", song_id=sid), "unlike", queue=True), Complete()]
# ================================================================================================== EMAIL


class EmailReceiptsNote(TaskTemplate):
    name = "email_receipts_note"
    difficulty = "hard"
    apps = ("email", "notes")
    sizes = {"inbox": 40}

    @staticmethod
    def setup(ctx: SeedContext) -> dict:
        rng = ctx.rng
        first, last, label = ctx.last_month()
        for _ in range(rng.randint(40, 44)):
            _receipt(ctx, ctx.ts_between(first, last))
        before = first - timedelta(days=1)
        for _ in range(8):
            _receipt(ctx, ctx.ts_between(before - timedelta(days=25), before))
        for _ in range(4):
            _receipt(ctx, ctx.ts_between(last + timedelta(days=1), ctx.today_date))
        _filler_emails(ctx, rng.randint(66, 72))
        return {"first": first.isoformat(), "last": last.isoformat(), "month": label,
                "instruction": f"Total the receipts in my email inbox (subject 'Receipt from ...') that were sent in "
                               f"{label}, by category (the 'Category:' line; the amount is the 'Total:' line). Then "
                               f"create a note titled 'Receipts {label}' with one line per category, '<category>: "
                               f"<total>' with two decimals (e.g. 'groceries: 120.50'), categories in alphabetical "
                               f"order, nothing else."}

    @staticmethod
    def content(totals: dict[str, int]) -> str:
        return "\n".join(f"{c}: {money(v):.2f}" for c, v in sorted(totals.items()))

    @staticmethod
    def oracle(w: World, p: dict) -> Solution:
        from .templates import dollars, line_value

        totals: dict[str, int] = defaultdict(int)
        for e in w.q("SELECT * FROM email_messages WHERE folder = 'inbox' AND subject LIKE 'Receipt from %' AND "
                     "substr(sent_at, 1, 10) >= ? AND substr(sent_at, 1, 10) <= ?", (p["first"], p["last"])):
            totals[line_value(e["body"], "Category")] += int(round(dollars(line_value(e["body"], "Total")) * 100))
        return Solution([("notes", "create_note", {"title": f"Receipts {p['month']}",
                                                   "content": EmailReceiptsNote.content(totals)})])

    @staticmethod
    def plan(p: dict) -> list:
        inbox = Pages("email", "show_inbox", keep=_add_ids("email_id", lambda e: _is_receipt(e) and
                                                           p["first"] <= e["sent_at"][:10] <= p["last"]), init=[])

        def add(kb: KB, acc: dict, i: int, e: dict) -> dict:
            amt = _dollars(_line(e["body"], "Total"))
            cat = _line(e["body"], "Category")
            if amt is not None and cat:
                acc[cat] = acc.get(cat, 0) + int(round(amt * 100))  # running totals in cents
            return acc

        read = Each(lambda kb: kb.take(inbox), lambda kb, i: C("email", "show_email", email_id=i), "read receipts",
                    keep=add, init={}, queue=True)

        def note(kb: KB) -> Any:
            return C("notes", "create_note", title=f"Receipts {p['month']}",
                     content=EmailReceiptsNote.content(kb.acc(read)))

        return [*prelude(["email", "notes"]), inbox, read, Single(note, app="notes"), Complete()]
ACTIONS = ["Review the budget draft", "Book the meeting room", "Send the signed contract", "Update the roadmap",
           "Order new badges", "Renew the domain", "Prepare onboarding docs", "Schedule the team retro",
           "Fix the login bug", "Draft the press release", "Collect vendor quotes", "Plan the offsite agenda",
           "Archive old tickets", "Review pull request 42", "Call the insurance broker", "Test the backup restore",
           "Write the quarterly summary", "Approve the new logo", "Clean up the shared drive", "Ship the beta build",
           "Confirm catering order", "Reply to the auditor", "Translate the FAQ", "Migrate the wiki",
           "Audit user permissions", "Sign the NDA", "Update the price list", "Record the demo video"]


class EmailActionItemsTodo(TaskTemplate):
    name = "email_action_items_todo"
    difficulty = "hard"
    apps = ("email", "todo")
    sizes = {"inbox": 40}

    @staticmethod
    def setup(ctx: SeedContext) -> dict:
        rng = ctx.rng
        boss = ctx.contacts[1]
        for title in rng.sample(ACTIONS, rng.randint(24, 27)):
            due = (ctx.today_date + timedelta(days=rng.randint(2, 40))).isoformat()
            _email(ctx, boss.email, boss.name, f"Action: {title}",
                   f"Hi {ctx.user.first_name},\nplease take care of this.\nDue: {due}\nThanks,\n{boss.first_name}",
                   ctx.ts(rng.uniform(0.2, 60)))
        for title in rng.sample(ACTIONS, 3):
            _email(ctx, boss.email, boss.name, f"Re: Action: {title}", "Done already, ignore.\nDue: 2024-01-01",
                   ctx.ts(rng.uniform(0.2, 60)))
        _filler_emails(ctx, rng.randint(68, 74))
        return {"instruction": "For every email in my inbox whose subject starts with 'Action:', create a todo task "
                               "titled with the rest of the subject (after 'Action: '), due on the date in the "
                               "email's 'Due:' line, with high priority."}

    @staticmethod
    def oracle(w: World, p: dict) -> Solution:
        from .templates import line_value

        calls = []
        for e in w.q("SELECT * FROM email_messages WHERE folder = 'inbox' AND subject LIKE 'Action: %'"):
            calls.append(("todo", "create_task", {"title": e["subject"][len("Action: "):],
                                                  "due_date": line_value(e["body"], "Due"), "priority": "high"}))
        return Solution(calls)

    @staticmethod
    def plan(p: dict) -> list:
        inbox = Pages("email", "show_inbox", keep=_add_ids("email_id", lambda e: e["subject"].startswith("Action: ")),
                      init=[])

        def due(kb: KB, acc: list, i: int, e: dict) -> list:
            return acc + [[e["subject"][len("Action: "):], _line(e["body"], "Due")]]

        read = Each(lambda kb: kb.take(inbox), lambda kb, i: C("email", "show_email", email_id=i), "read",
                    keep=due, init=[], queue=True)

        def create(kb: KB, x: list) -> Any:
            args = {"title": x[0], "priority": "high"}
            if x[1]:
                args["due_date"] = x[1]
            return C("todo", "create_task", **args)

        return [*prelude(["email", "todo"]), inbox, read,
                Each(lambda kb: kb.take(read), create, "create tasks", queue=True), Complete()]
BILLERS = [("City Utilities", "billing@cityutilities.com"), ("AquaWater", "pay@aquawater.com"),
           ("Netstream", "billing@netstream.tv"), ("FiberNet", "accounts@fibernet.net"),
           ("GreenPower", "billing@greenpower.com"), ("SafeHome Insurance", "premiums@safehome.com"),
           ("Metro Parking", "pay@metroparking.com"), ("CloudBox", "billing@cloudbox.com")]


def _bill_email(ctx: SeedContext, name: str, email: str, inv: str, amount: float, status: str, days: float) -> None:
    """A biller's bill in the inbox, `days` ago: the lines the bill templates' oracles and plans read."""
    body = f"Bill from {name}\nInvoice: {inv}\nAmount due: ${amount:.2f}\nPay to: {email}\nStatus: {status}\n"
    _email(ctx, email, name, f"Bill: {name} invoice {inv}", body, ctx.ts(days))


def _register_billers(w: World) -> None:
    """The billers as payments users (bills are paid to them)."""
    for name, email in BILLERS:
        w.insert("payments_users", email=email, name=name)


class EmailPayBills(TaskTemplate):
    name = "email_pay_bills"
    difficulty = "hard"
    apps = ("email", "payments")
    sizes = {"inbox": 40}

    @staticmethod
    def setup(ctx: SeedContext) -> dict:
        rng = ctx.rng
        _register_billers(ctx.world)
        for _ in range(rng.randint(27, 30)):
            name, email = rng.choice(BILLERS)
            inv = f"INV-{rng.randint(100000, 999999)}"
            status = "paid by autopay" if rng.random() < 0.25 else "unpaid"
            amount = money(rng.randint(1500, 30000))
            _bill_email(ctx, name, email, inv, amount, status, rng.uniform(0.2, 45))
        _filler_emails(ctx, rng.randint(72, 78))
        return {"instruction": "Pay every unpaid bill in my email inbox (subject starts with 'Bill:'; skip bills whose "
                               "'Status:' line says they are already paid) on payments: send the 'Amount due:' to "
                               "the 'Pay to:' address, with the invoice number from the 'Invoice:' line as the note."}

    @staticmethod
    def oracle(w: World, p: dict) -> Solution:
        from .templates import dollars, line_value

        calls = []
        for e in w.q("SELECT * FROM email_messages WHERE folder = 'inbox' AND subject LIKE 'Bill: %'"):
            if line_value(e["body"], "Status") == "unpaid":
                calls.append(("payments", "send_money", {"receiver_email": line_value(e["body"], "Pay to"),
                                                         "amount": dollars(line_value(e["body"], "Amount due")),
                                                         "note": line_value(e["body"], "Invoice")}))
        return Solution(calls)

    @staticmethod
    def plan(p: dict) -> list:
        inbox = Pages("email", "show_inbox", keep=_add_ids("email_id", lambda e: e["subject"].startswith("Bill: ")),
                      init=[])

        def unpaid(kb: KB, acc: list, i: int, d: dict) -> list:
            if _line(d["body"], "Status") != "unpaid":
                return acc
            return acc + [[_line(d["body"], "Pay to"), _dollars(_line(d["body"], "Amount due")),
                           _line(d["body"], "Invoice")]]

        read = Each(lambda kb: kb.take(inbox), lambda kb, i: C("email", "show_email", email_id=i), "read bills",
                    keep=unpaid, init=[], queue=True)

        def pay(kb: KB, b: list) -> Any:
            return C("payments", "send_money", receiver_email=b[0], amount=b[1], note=b[2])

        return [*prelude(["email", "payments"]), inbox, read, Each(lambda kb: kb.take(read), pay, "pay", queue=True),
                Complete()]
class EmailCorrectedBills(TaskTemplate):
    """Values that change over time: some bills get one or two corrections later, and the newest amount about an
    invoice is the one to pay. An agent that lost a correction (or finds only the original bill again) pays an
    old amount; the bills are read early (inbox newest first, corrections mixed in) and paid at the end."""

    name = "email_corrected_bills"
    difficulty = "hard"
    apps = ("email", "payments")
    sizes = {"inbox": 40}

    @staticmethod
    def setup(ctx: SeedContext) -> dict:
        rng = ctx.rng
        _register_billers(ctx.world)
        bills = []
        for _ in range(rng.randint(23, 26)):
            name, email = rng.choice(BILLERS)
            inv = f"INV-{rng.randint(100000, 999999)}"
            days = rng.uniform(20, 45)
            status = "paid by autopay" if rng.random() < 0.2 else "unpaid"
            _bill_email(ctx, name, email, inv, money(rng.randint(1500, 30000)), status, days)
            bills.append((name, email, inv, days, status))
        unpaid = [b for b in bills if b[4] == "unpaid"]
        for name, email, inv, days, _ in rng.sample(unpaid, min(len(unpaid), rng.randint(6, 8))):
            when = days
            for _ in range(rng.choice([1, 1, 2])):
                when = max(0.2, when - rng.uniform(1.0, 9.0))  # a whole day or more later: a later date
                body = (f"Corrected bill from {name}\nInvoice: {inv}\nAmount due: "
                        f"${money(rng.randint(1500, 30000)):.2f}\nPay to: {email}\nThis replaces the amount in our "
                        f"earlier email about this invoice.\n")
                _email(ctx, email, name, f"Correction: {name} invoice {inv}", body, ctx.ts(when))
        _filler_emails(ctx, rng.randint(60, 66))
        return {"instruction": "Pay every unpaid bill in my email inbox (subject starts with 'Bill:'; skip bills whose "
                               "'Status:' line says they are already paid) on payments: send the amount due to the "
                               "'Pay to:' address, with the invoice number from the 'Invoice:' line as the note. Some "
                               "billers sent corrections later (subject starts with 'Correction:', same invoice "
                               "number): the 'Amount due:' of the newest email about an invoice is the one to pay."}

    @staticmethod
    def oracle(w: World, p: dict) -> Solution:
        from .templates import dollars, line_value

        newest: dict[str, tuple[str, float]] = {}
        rows = w.q("SELECT * FROM email_messages WHERE folder = 'inbox' AND (subject LIKE 'Bill: %' OR subject LIKE "
                   "'Correction: %') ORDER BY sent_at")
        for e in rows:
            newest[line_value(e["body"], "Invoice")] = (e["sent_at"], dollars(line_value(e["body"], "Amount due")))
        calls = []
        for e in rows:
            if e["subject"].startswith("Bill: ") and line_value(e["body"], "Status") == "unpaid":
                inv = line_value(e["body"], "Invoice")
                calls.append(("payments", "send_money", {"receiver_email": line_value(e["body"], "Pay to"),
                                                         "amount": newest[inv][1], "note": inv}))
        return Solution(calls)

    @staticmethod
    def plan(p: dict) -> list:
        inbox = Pages("email", "show_inbox", keep=_add_ids(
            "email_id", lambda e: e["subject"].startswith(("Bill: ", "Correction: "))), init=[])

        def entry(kb: KB, acc: list, i: int, d: dict) -> list:
            kind = "bill" if d["subject"].startswith("Bill: ") else "correction"
            return acc + [[_line(d["body"], "Invoice"), kind, _line(d["body"], "Status") or "",
                           _line(d["body"], "Pay to"), _dollars(_line(d["body"], "Amount due")), d["sent_at"]]]

        read = Each(lambda kb: kb.take(inbox), lambda kb, i: C("email", "show_email", email_id=i), "read bills",
                    keep=entry, init=[], queue=True)

        def to_pay(kb: KB) -> list[list]:
            rows = kb.take(read)
            newest: dict[str, tuple[str, Any]] = {}
            for inv, _kind, _status, _to, amt, at in rows:
                if inv not in newest or at > newest[inv][0]:
                    newest[inv] = (at, amt)
            return [[to, newest[inv][1], inv] for inv, kind, status, to, _amt, _at in rows
                    if kind == "bill" and status == "unpaid"]

        return [*prelude(["email", "payments"]), inbox, read,
                Each(to_pay, lambda kb, b: C("payments", "send_money", receiver_email=b[0], amount=b[1], note=b[2]),
                     "pay", queue=True),
                Complete()]
EVENTS = ["Summer BBQ", "Housewarming Party", "Board Game Night", "Birthday Brunch", "Book Launch"]


class EmailRsvpReplies(TaskTemplate):
    name = "email_rsvp_replies"
    difficulty = "hard"
    apps = ("email",)
    sizes = {"inbox": 40}

    @staticmethod
    def setup(ctx: SeedContext) -> dict:
        rng = ctx.rng
        event, other = rng.sample(EVENTS, 2)
        for i, person in enumerate(rng.sample(ctx.people, 30)):
            ev = other if i >= 25 else event
            attending = rng.random() < 0.65
            guests = rng.randint(0, 3) if attending else 0
            _email(ctx, person.email, person.name, f"RSVP: {ev}",
                   f"Hi {ctx.user.first_name}!\nAttending: {'yes' if attending else 'no'}\nGuests: {guests}\n"
                   f"{person.first_name}", ctx.ts(rng.uniform(0.2, 30)))
        _filler_emails(ctx, rng.randint(56, 60))
        return {"event": event,
                "instruction": f"Reply 'Thanks for letting me know!' to every email in my inbox with the subject "
                               f"'RSVP: {event}', and tell me how many people will come: everyone who answered "
                               f"'Attending: yes' plus the extra guests on their 'Guests:' line."}

    @staticmethod
    def oracle(w: World, p: dict) -> Solution:
        from .templates import line_value

        calls, total = [], 0
        for e in w.q("SELECT * FROM email_messages WHERE folder = 'inbox' AND subject = ?", (f"RSVP: {p['event']}",)):
            calls.append(("email", "reply_to_email",
                          {"email_id": e["email_id"], "body": "Thanks for letting me know!"}))
            if line_value(e["body"], "Attending") == "yes":
                total += 1 + int(line_value(e["body"], "Guests") or 0)
        return Solution(calls, total)

    @staticmethod
    def plan(p: dict) -> list:
        inbox = Pages("email", "show_inbox", keep=_add_ids("email_id", lambda e: e["subject"] == f"RSVP: {p['event']}"),
                      init=[])

        def count(kb: KB, acc: int, i: int, d: dict) -> int:
            if _line(d["body"], "Attending") == "yes":
                acc += 1 + int(_line(d["body"], "Guests") or 0)
            return acc

        read = Each(lambda kb: kb.acc(inbox), lambda kb, i: C("email", "show_email", email_id=i), "read",
                    keep=count, init=0, queue=True)
        return [*prelude(["email"]), inbox, read,
                Each(lambda kb: kb.take(inbox),
                     lambda kb, i: C("email", "reply_to_email", email_id=i, body="Thanks for letting me know!"),
                     "reply", queue=True),
                Complete(lambda kb: kb.acc(read))]
class ExpensesImportReceipts(TaskTemplate):
    name = "expenses_import_receipts"
    difficulty = "hard"
    apps = ("email", "expenses")
    sizes = {"inbox": 40, "groups": 4}

    @staticmethod
    def setup(ctx: SeedContext) -> dict:
        rng = ctx.rng
        first, last, label = ctx.last_month()
        for _ in range(rng.randint(32, 36)):
            _receipt(ctx, ctx.ts_between(first, last), shared=rng.random() < 0.5)
        before = first - timedelta(days=1)
        for _ in range(6):
            _receipt(ctx, ctx.ts_between(before - timedelta(days=25), before), shared=True)
        _filler_emails(ctx, rng.randint(55, 62))
        g = rng.choice(ctx.world.q("SELECT name FROM expenses_groups ORDER BY group_id"))["name"]
        return {"first": first.isoformat(), "last": last.isoformat(), "group": g,
                "instruction": f"For each receipt email in my inbox (subject 'Receipt from ...') sent in {label} "
                               f"whose body says 'Shared: yes', add an expense to my '{g}' group on the expenses "
                               f"app: description = the 'Store:' line, amount = the 'Total:' line, split equally "
                               f"(the default)."}

    @staticmethod
    def oracle(w: World, p: dict) -> Solution:
        from .templates import dollars, line_value

        gid = w.q("SELECT group_id FROM expenses_groups WHERE name = ?", (p["group"],))[0]["group_id"]
        calls = []
        for e in w.q("SELECT * FROM email_messages WHERE folder = 'inbox' AND subject LIKE 'Receipt from %' AND "
                     "substr(sent_at, 1, 10) >= ? AND substr(sent_at, 1, 10) <= ?", (p["first"], p["last"])):
            if line_value(e["body"], "Shared") == "yes":
                calls.append(("expenses", "add_expense", {"group_id": gid,
                                                          "description": line_value(e["body"], "Store"),
                                                          "amount": dollars(line_value(e["body"], "Total"))}))
        return Solution(calls)

    @staticmethod
    def plan(p: dict) -> list:
        inbox = Pages("email", "show_inbox", keep=_add_ids("email_id", lambda e: _is_receipt(e) and
                                                           p["first"] <= e["sent_at"][:10] <= p["last"]), init=[])

        def shared(kb: KB, acc: list, i: int, d: dict) -> list:
            if _line(d["body"], "Shared") != "yes":
                return acc
            return acc + [[_line(d["body"], "Store"), _dollars(_line(d["body"], "Total"))]]

        read = Each(lambda kb: kb.take(inbox), lambda kb, i: C("email", "show_email", email_id=i), "read receipts",
                    keep=shared, init=[], queue=True)
        groups = Pages("expenses", "show_groups",
                       keep=lambda kb, acc, r: next((g["group_id"] for g in r.get("items", [])
                                                     if g["name"] == p["group"]), acc))

        def add(kb: KB, x: list) -> Any:
            gid = kb.acc(groups)
            if gid is None:
                return None
            return C("expenses", "add_expense", group_id=gid, description=x[0], amount=x[1])

        return [*prelude(["email", "expenses"]), inbox, read, groups,
                Each(lambda kb: kb.take(read), add, "add expenses", queue=True), Complete()]
# =============================================================================================== EXPENSES


class ExpensesSettleAll(TaskTemplate):
    name = "expenses_settle_all"
    difficulty = "hard"
    apps = ("expenses", "payments")
    sizes = {"groups": 4, "group_expenses": 13}

    @staticmethod
    def setup(ctx: SeedContext) -> dict:
        from .templates import owed_to_user

        rng, w = ctx.rng, ctx.world
        for g in w.q("SELECT group_id FROM expenses_groups ORDER BY group_id"):
            members = [m["email"] for m in w.q("SELECT email FROM expenses_members WHERE group_id = ? AND email != ?",
                                               (g["group_id"], ctx.user.email))]
            for _ in range(rng.randint(1, 2)):
                other = rng.choice(members)
                out = rng.random() < 0.5
                w.insert("expenses_settlements", group_id=g["group_id"],
                         payer_email=ctx.user.email if out else other, payee_email=other if out else ctx.user.email,
                         amount_cents=rng.randint(500, 2500), created_at=ctx.ts(rng.uniform(1, 20)))
        n_debts = sum(1 for g in w.q("SELECT group_id FROM expenses_groups")
                      for v in owed_to_user(w, g["group_id"], ctx.user.email).values() if v < 0)
        return {"n_debts": n_debts,
                "instruction": "Settle all my debts on the expenses app: in every group, for every member I owe "
                               "money to (net of all expenses and settlements in that group), send them exactly that "
                               "amount on payments with the note 'Settle up: <group name>', and record the "
                               "settlement in that group on the expenses app."}

    @staticmethod
    def oracle(w: World, p: dict) -> Solution:
        from .templates import owed_to_user

        me = w.q("SELECT email FROM supervisor_profile")[0]["email"]
        calls = []
        for g in w.q("SELECT * FROM expenses_groups ORDER BY group_id"):
            for email, c in sorted(owed_to_user(w, g["group_id"], me).items()):
                if c < 0:
                    calls.append(("payments", "send_money", {"receiver_email": email, "amount": money(-c),
                                                             "note": f"Settle up: {g['name']}"}))
                    calls.append(("expenses", "record_settlement", {"group_id": g["group_id"], "payee_email": email,
                                                                    "amount": money(-c)}))
        return Solution(calls)

    @staticmethod
    def plan(p: dict) -> list:
        groups = Pages("expenses", "show_groups",
                       keep=lambda kb, acc, r: acc + [[g["group_id"], g["name"]] for g in r.get("items", [])], init=[])
        gexp = EachPages(lambda kb: [g[0] for g in kb.acc(groups)], "expenses", "show_group_expenses",
                         lambda g: {"group_id": g}, "group expenses",
                         keep=lambda kb, acc, g, r: acc + [e["expense_id"] for e in r.get("items", [])], init=[],
                         queue=True)

        def bump(acc: dict, g: int, email: str, c: int) -> dict:
            k = f"{g}|{email}"  # net balance with one member of one group, in cents (+: they owe me)
            acc[k] = acc.get(k, 0) + c
            return acc

        def expense(kb: KB, acc: dict, i: int, d: dict) -> dict:
            me = kb.profile()["email"]
            for sh in d.get("shares", []):
                c = int(round(sh["share"] * 100))
                if d["paid_by"] == me and sh["email"] != me:
                    bump(acc, d["group_id"], sh["email"], c)
                elif d["paid_by"] != me and sh["email"] == me:
                    bump(acc, d["group_id"], d["paid_by"], -c)
            return acc

        details = Each(lambda kb: kb.take(gexp), lambda kb, i: C("expenses", "show_expense", expense_id=i),
                       "expense details", keep=expense, init={}, queue=True)

        def settlement(kb: KB, acc: dict, g: int, r: dict) -> dict:
            me = kb.profile()["email"]
            for st in r.get("items", []):
                c = int(round(st["amount"] * 100))
                if st["payer_email"] == me:
                    bump(acc, g, st["payee_email"], c)
                elif st["payee_email"] == me:
                    bump(acc, g, st["payer_email"], -c)
            return acc

        settlements = EachPages(lambda kb: [g[0] for g in kb.acc(groups)], "expenses", "show_settlements",
                                lambda g: {"group_id": g}, "settlements", keep=settlement, init={}, queue=True)

        def steps(kb: KB) -> list[list]:
            names = {g: n for g, n in kb.take(groups)}
            bal: dict[str, int] = dict(kb.take(details))
            for k, c in kb.take(settlements).items():
                bal[k] = bal.get(k, 0) + c
            out = []
            for k in sorted(bal, key=lambda k: (int(k.split("|", 1)[0]), k.split("|", 1)[1])):
                g, email = k.split("|", 1)
                if bal[k] < 0:
                    out += [[kind, int(g), names.get(int(g), ""), email, money(-bal[k])] for kind in ("pay", "record")]
            return out

        def act(kb: KB, s: list) -> Any:
            kind, g, name, email, amount = s
            if kind == "pay":
                return C("payments", "send_money", receiver_email=email, amount=amount, note=f"Settle up: {name}")
            return C("expenses", "record_settlement", group_id=g, payee_email=email, amount=amount)

        return [*prelude(["expenses", "payments"]), groups, gexp, details, settlements,
                Each(steps, act, "settle", queue=True), Complete()]
# ====================================================================================== NOTES / FILES / PHONE


class NotesMeetingTodos(TaskTemplate):
    name = "notes_meeting_todos"
    difficulty = "hard"
    apps = ("notes", "todo")
    sizes = {"notes": 18}

    @staticmethod
    def setup(ctx: SeedContext) -> dict:
        rng, w = ctx.rng, ctx.world
        pool = list(ACTIONS)
        for i in range(rng.randint(15, 17)):
            items = [rng.choice(pool) for _ in range(rng.randint(3, 4))]
            lines = [f"Meeting {i + 1} notes", "Attendees: team"] + [f"TODO: {x}" for x in items] + ["Next: TBD"]
            rng.shuffle(lines)
            w.insert("notes_notes", title=f"Sync meeting #{i + 1}", content="\n".join(lines),
                     tags=json.dumps(["meeting"] + (["work"] if i % 2 else [])), pinned=0,
                     created_at=ctx.ts(rng.uniform(1, 90)), updated_at=ctx.ts(1))
        for i in range(rng.randint(10, 12)):
            w.insert("notes_notes", title=f"Idea {i + 1}", content=f"TODO: {rng.choice(pool)} (someday)",
                     tags=json.dumps(["ideas"]), pinned=0, created_at=ctx.ts(rng.uniform(1, 90)),
                     updated_at=ctx.ts(1))
        return {"instruction": "Each of my notes tagged 'meeting' has action items on lines starting with 'TODO: '. "
                               "Create a todo task for every such action item (one per line, duplicates included), "
                               "titled with the text after 'TODO: ', medium priority, no due date."}

    @staticmethod
    def oracle(w: World, p: dict) -> Solution:
        calls = []
        for n in w.q("SELECT * FROM notes_notes ORDER BY note_id"):
            if "meeting" in json.loads(n["tags"]):
                for line in n["content"].splitlines():
                    if line.startswith("TODO: "):
                        calls.append(("todo", "create_task", {"title": line[6:], "priority": "medium"}))
        return Solution(calls)

    @staticmethod
    def plan(p: dict) -> list:
        notes = Pages("notes", "show_notes", keep=_add_ids("note_id", lambda n: "meeting" in n["tags"]), init=[])

        def todos(kb: KB, acc: list, nid: int, n: dict) -> list:
            return acc + [line[6:] for line in (n.get("content") or "").splitlines() if line.startswith("TODO: ")]

        read = Each(lambda kb: kb.take(notes), lambda kb, i: C("notes", "show_note", note_id=i), "read",
                    keep=todos, init=[], queue=True)
        return [*prelude(["notes", "todo"]), notes, read,
                Each(lambda kb: kb.take(read), lambda kb, t: C("todo", "create_task", title=t, priority="medium"),
                     "create", queue=True),
                Complete()]
VENDORS = ["acme_supplies", "brightlight_energy", "cobalt_cleaning", "delta_logistics", "evergreen_catering",
           "fjord_software", "granite_printing", "harbor_security", "ion_telecom", "juniper_legal"]


class FsInvoiceTotals(TaskTemplate):
    name = "fs_invoice_totals"
    difficulty = "hard"
    apps = ("file_system",)

    @staticmethod
    def setup(ctx: SeedContext) -> dict:
        rng, w = ctx.rng, ctx.world
        for v in sorted(rng.sample(VENDORS, 8)):
            for i in range(rng.randint(6, 9)):
                amt = money(rng.randint(2000, 90000))
                w.insert("file_system_files", path=f"~/documents/invoices/{v}/invoice_{i + 1:03d}.txt",
                         content=f"Vendor: {v}\nInvoice: INV-{rng.randint(1000, 9999)}\nAmount due: ${amt:.2f}\n",
                         created_at=ctx.ts(rng.uniform(5, 90)), updated_at=ctx.ts(2))
            if rng.random() < 0.5:
                w.insert("file_system_files", path=f"~/documents/invoices/{v}/notes.txt",
                         content="Amount due: $999.99 (old estimate, not an invoice)", created_at=ctx.ts(50),
                         updated_at=ctx.ts(2))
        return {"instruction": "Add up the 'Amount due:' of every invoice file (named invoice_*.txt) under "
                               "~/documents/invoices, where each sub-folder is one vendor, and create the file "
                               "~/documents/invoice_totals.csv with one line per vendor '<vendor folder name>,<total>' "
                               "(two decimals, e.g. 'acme_supplies,1234.50'), sorted by vendor folder name, no "
                               "header."}

    @staticmethod
    def oracle(w: World, p: dict) -> Solution:
        from .templates import dollars, line_value

        totals: dict[str, int] = defaultdict(int)
        for f in w.q("SELECT * FROM file_system_files WHERE path LIKE '~/documents/invoices/%/invoice_%'"):
            v = f["path"].split("/")[3]
            totals[v] += int(round(dollars(line_value(f["content"], "Amount due")) * 100))
        content = "\n".join(f"{v},{money(c):.2f}" for v, c in sorted(totals.items()))
        return Solution([("file_system", "create_file", {"path": "~/documents/invoice_totals.csv",
                                                         "content": content})])

    @staticmethod
    def plan(p: dict) -> list:
        root = "~/documents/invoices"
        top = Pages("file_system", "show_directory", {"directory": root},
                    keep=lambda kb, acc, r: acc + [e["name"] for e in r.get("items", []) if e["type"] == "directory"],
                    init=[])

        def invoices(kb: KB, acc: list, v: str, r: dict) -> list:  # "<vendor>/<file name>", relative to root
            return acc + [f"{v}/{e['name']}" for e in r.get("items", [])
                          if e["type"] == "file" and e["name"].startswith("invoice_")]

        folders = EachPages(lambda kb: kb.take(top), "file_system", "show_directory",
                            lambda v: {"directory": f"{root}/{v}"}, "vendor folders", keep=invoices, init=[],
                            queue=True)

        def add(kb: KB, acc: dict, f: str, r: dict) -> dict:
            amt = _dollars(_line(r.get("content"), "Amount due"))
            if amt is not None:
                v = f.split("/")[0]
                acc[v] = acc.get(v, 0) + int(round(amt * 100))  # running totals in cents
            return acc

        read = Each(lambda kb: kb.take(folders), lambda kb, f: C("file_system", "show_file", path=f"{root}/{f}"),
                    "read invoices", keep=add, init={}, queue=True)

        def create(kb: KB) -> Any:
            content = "\n".join(f"{v},{money(c):.2f}" for v, c in sorted(kb.acc(read).items()))
            return C("file_system", "create_file", path="~/documents/invoice_totals.csv", content=content)

        return [*prelude(["file_system"]), top, folders, read, Single(create, app="file_system"), Complete()]
class PhoneTextsSummaryNote(TaskTemplate):
    name = "phone_texts_summary_note"
    difficulty = "hard"
    apps = ("phone", "notes")
    sizes = {"contacts": 28, "messages": 30}

    @staticmethod
    def setup(ctx: SeedContext) -> dict:
        rng, w = ctx.rng, ctx.world
        since = ctx.today_date - timedelta(days=30)
        strangers = [f"555{rng.randint(1000000, 9999999)}" for _ in range(6)]
        senders = [p.phone_number for p in rng.sample(ctx.contacts, 14)]
        for _ in range(rng.randint(375, 395)):
            r = rng.random()
            if r < 0.55:
                sender, receiver = rng.choice(senders), ctx.user.phone_number
            elif r < 0.7:
                sender, receiver = rng.choice(strangers), ctx.user.phone_number
            else:
                sender, receiver = ctx.user.phone_number, rng.choice(senders)
            w.insert("phone_messages", sender=sender, receiver=receiver,
                     text=rng.choice(["ok", "see you", "lol", "on it", "thanks!", "where are you?", "call me"]),
                     sent_at=ctx.ts(rng.uniform(0.05, 33)))
        return {"since": since.isoformat(),
                "instruction": f"Count the text messages I received from each of my contacts since {since.isoformat()} "
                               f"(that day included). Create a note titled 'Texts since {since.isoformat()}' with "
                               f"one line per contact who sent me at least one, '<first name> <last name>: <count>', "
                               f"highest count first (ties by name), nothing else."}

    @staticmethod
    def content(counts: dict[str, int]) -> str:
        return "\n".join(f"{n}: {c}" for n, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))

    @staticmethod
    def oracle(w: World, p: dict) -> Solution:
        me = w.q("SELECT phone_number FROM supervisor_profile")[0]["phone_number"]
        counts: dict[str, int] = {}
        for c in w.q("SELECT * FROM phone_contacts"):
            n = w.q("SELECT COUNT(*) AS n FROM phone_messages WHERE sender = ? AND receiver = ? AND "
                    "substr(sent_at, 1, 10) >= ?", (c["phone_number"], me, p["since"]))[0]["n"]
            if n:
                counts[f"{c['first_name']} {c['last_name']}"] = n
        return Solution([("notes", "create_note", {"title": f"Texts since {p['since']}",
                                                   "content": PhoneTextsSummaryNote.content(counts)})])

    @staticmethod
    def plan(p: dict) -> list:
        contacts = Pages("phone", "show_contacts", keep=lambda kb, acc, r: {
            **acc, **{c["phone_number"]: f"{c['first_name']} {c['last_name']}" for c in r.get("items", [])}}, init={})

        def older(page: dict) -> bool:  # newest first: stop once a page reaches before the window
            items = page.get("items") or []
            return bool(items) and items[-1]["sent_at"][:10] < p["since"]

        def count(kb: KB, acc: dict, r: dict) -> dict:
            me = kb.profile()["phone_number"]
            names = kb.acc(contacts)
            for m in r.get("items", []):
                if m["receiver"] == me and m["sender"] in names and m["sent_at"][:10] >= p["since"]:
                    acc[names[m["sender"]]] = acc.get(names[m["sender"]], 0) + 1
            return acc

        texts = Pages("phone", "show_text_messages", until=older, keep=count, init={})

        def note(kb: KB) -> Any:
            return C("notes", "create_note", title=f"Texts since {p['since']}",
                     content=PhoneTextsSummaryNote.content(kb.acc(texts)))

        return [*prelude(["phone", "notes"]), contacts, texts, Single(note, app="notes"), Complete()]


# ================================================================================== EXPIRING CREDENTIALS


class MusicPlaylistGenresNote(TaskTemplate):
    """Credentials that expire: the music and notes passwords expire with every access token (60 calls), so the
    passwords read in round 2 are refused later and must be looked up again - the newest one counts, an old
    one kept in memory is a stale distractor. The note at the end needs what was found in every playlist
    (walked over ~80 rounds), in library order."""

    name = "music_playlist_genres_note"
    difficulty = "hard"
    apps = ("music", "notes")
    sizes = {"playlists": 24, "playlist_min": 11, "playlist_max": 15, "songs": 110}
    rotating_passwords = ("music", "notes")
    TITLE = "Playlist genres"

    @staticmethod
    def setup(ctx: SeedContext) -> dict:
        return {"instruction": f"For each playlist in my music library, find its most common genre (ties: the "
                               f"alphabetically first genre). Create a note titled '{MusicPlaylistGenresNote.TITLE}' "
                               f"with one line per playlist, '<playlist title>: <genre>', in library order, "
                               f"nothing else."}

    @staticmethod
    def top_genre(counts: dict[str, int]) -> str:
        return min(counts, key=lambda g: (-counts[g], g))

    @staticmethod
    def oracle(w: World, p: dict) -> Solution:
        lines = []
        for pl in w.q("SELECT playlist_id, title FROM music_playlists ORDER BY playlist_id"):
            counts = Counter(r["genre"] for r in w.q(
                "SELECT s.genre FROM music_playlist_songs ps JOIN music_songs s ON s.song_id = ps.song_id "
                "WHERE ps.playlist_id = ?", (pl["playlist_id"],)))
            if counts:
                lines.append(f"{pl['title']}: {MusicPlaylistGenresNote.top_genre(counts)}")
        return Solution([("notes", "create_note", {"title": MusicPlaylistGenresNote.TITLE,
                                                   "content": "\n".join(lines)})])

    @staticmethod
    def plan(p: dict) -> list:
        lib = Pages("music", "show_playlist_library", init=[],
                    keep=lambda kb, acc, r: acc + [[x["playlist_id"], x["title"]] for x in r.get("items", [])])

        def genres(kb: KB, acc: dict, pl: list, r: dict) -> dict:
            """Genre counts of one page, under the playlist's title (pages of a playlist add up)."""
            mine = acc.setdefault(pl[1], {})
            for s in r.get("items", []):
                mine[s["genre"]] = mine.get(s["genre"], 0) + 1
            return acc

        songs = EachPages(lambda kb: kb.take(lib), "music", "show_playlist_songs", lambda pl: {"playlist_id": pl[0]},
                          "playlist songs", keep=genres, init={})

        def note(kb: KB) -> Any:
            found = kb.acc(songs)
            lines = [f"{title}: {MusicPlaylistGenresNote.top_genre(found[title])}"
                     for _pid, title in kb.take(lib) if found.get(title)]
            return C("notes", "create_note", title=MusicPlaylistGenresNote.TITLE, content="\n".join(lines))

        return [*prelude(["music", "notes"]), lib, songs, Single(note, app="notes"), Complete()]
