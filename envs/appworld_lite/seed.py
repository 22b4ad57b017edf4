"""Deterministic seeding of a task's world: a base population shared by all tasks plus template extras."""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from .apps import ALL_APPS
from .framework import PASSWORD_ALPHABET, World

__all__ = ["Person", "SeedContext", "build_world", "stable_seed"]

FIRST = ["Alice", "Bruno", "Chloe", "Dmitri", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Keiko", "Liam",
         "Maya", "Nikhil", "Olga", "Pablo", "Quinn", "Rosa", "Samir", "Tara", "Umar", "Vera", "Wei", "Ximena",
         "Yusuf", "Zoe", "Aaron", "Bianca", "Carlos", "Dana", "Emil", "Fatima", "Gustav", "Hana", "Ivan", "Julia",
         "Kofi", "Lena", "Marco", "Nadia", "Oscar", "Priya", "Rafael", "Sofia", "Tomas", "Uma", "Victor", "Wanda"]
LAST = ["Abbott", "Becker", "Castillo", "Dubois", "Eriksen", "Fischer", "Garcia", "Hansen", "Ito", "Jensen",
        "Kowalski", "Larsen", "Moreau", "Nakamura", "Okafor", "Petrov", "Quispe", "Rossi", "Schmidt", "Tanaka",
        "Ueda", "Varga", "Weber", "Xu", "Yilmaz", "Zimmer", "Alvarez", "Brooks", "Costa", "Diaz", "Evans", "Fontaine"]
ARTISTS = ["The Lanterns", "Mira Solis", "Northbound", "Velvet Static", "Kai Moreno", "Aurora Lane", "Blue Harbor",
           "Iron Orchid", "Jules Marin", "Paper Comets", "Sable Rivers", "Neon Tide", "Odessa Grey", "Quiet Giants",
           "Ruby Vale", "Tin Sparrow"]
GENRES = ["pop", "rock", "jazz", "hip-hop", "classical", "country", "electronic", "folk"]
WORDS = ["Midnight", "Golden", "River", "Echo", "Summer", "Paper", "Silver", "Wild", "Falling", "Electric",
         "Broken", "Ocean", "Velvet", "Hollow", "Neon", "Crimson", "Gentle", "Lonely", "Burning", "Distant", "Frozen",
         "Secret", "Morning", "Shadow", "Little", "Endless", "Quiet", "Dancing", "Northern", "Sweet"]
NOUNS = ["Heart", "Road", "Sky", "Dream", "Light", "Fire", "Rain", "Song", "City", "Lights", "Hearts", "Waves",
         "Stars", "Garden", "Window", "Mirror", "Horizon", "Letters", "Streets", "Thunder", "Echoes", "Flame"]
PLAYLIST_WORDS = ["Road Trip", "Workout", "Focus", "Late Night", "Sunday Morning", "Party", "Chill", "Throwbacks",
                  "Rainy Day", "Dinner", "Study", "Running", "Summer", "Winter", "Commute", "Sleep", "Cooking",
                  "Feel Good", "Deep Cuts", "Acoustic", "Classics", "Discoveries", "Favorites", "Weekend", "Morning",
                  "Evening", "Roadside", "Gym", "Beach", "Mountain", "Coffee", "Indie Mix", "Retro", "Fresh Finds"]
GROUP_NAMES = ["Roommates", "Ski Trip", "Book Club", "Office Lunch", "Beach House", "Family", "Road Trip 2024",
               "Game Night", "Climbing Crew", "Wedding Party"]
RELATION_ROLES = ["roommate", "boss", "sister", "brother", "mother", "father", "partner"]
SERVICES = [("newsletter@dailybrief.com", "Daily Brief"), ("no-reply@bankly.com", "Bankly"),
            ("updates@socialnet.com", "SocialNet"), ("deals@shopmart.com", "ShopMart"),
            ("alerts@skyair.com", "SkyAir"), ("support@cloudbox.com", "CloudBox")]
GENERIC_SUBJECTS = ["Quick question", "Weekend plans", "Meeting notes", "Photos from the trip", "Lunch tomorrow?",
                    "Re: project update", "Happy Friday", "Book recommendation", "Catching up", "Reminder",
                    "Your weekly digest", "Account update", "Flight confirmation", "Special offer inside",
                    "New login detected", "Invitation", "Thanks!", "Draft for review", "Conference", "Dinner?"]
NOTE_TOPICS = ["Groceries", "Gift ideas", "Packing list", "Books to read", "Movies to watch", "Garden plan",
               "Workout log", "Travel ideas", "Budget 2024", "Passwords hint", "Car maintenance", "Birthday party",
               "Podcast list", "Home repairs", "Language practice", "Wine notes", "Hiking trails", "Recipes to try"]
TODO_TITLES = ["Call the bank", "Renew passport", "Pay electricity bill", "Book dentist", "Clean the garage",
               "Buy birthday gift", "Water the plants", "Submit expense report", "Fix the bike", "Plan vacation",
               "Back up laptop", "Return library books", "Schedule car service", "Order new glasses", "Update resume",
               "Cancel gym trial", "Send thank-you notes", "File taxes", "Buy groceries", "Call grandma",
               "Organize photos", "Replace air filter", "Read contract", "Prepare slides", "Donate clothes"]


def stable_seed(*parts: Any) -> int:
    return int(hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()[:16], 16)


@dataclass
class Person:
    first_name: str
    last_name: str
    email: str
    phone_number: str
    birthday: str
    relationship: str | None = None  # set for people in the phone contacts

    @property
    def name(self) -> str:
        return f"{self.first_name} {self.last_name}"


@dataclass
class SeedContext:
    """What templates get to add their own data: the world, an rng, the people, and the calendar."""

    world: World
    rng: random.Random
    today: datetime
    user: Person
    people: list[Person]
    contacts: list[Person]
    sizes: dict[str, int]
    params: dict[str, Any] = field(default_factory=dict)

    # calendar helpers --------------------------------------------------------------------------------
    @property
    def today_date(self) -> date:
        return self.today.date()

    def ts(self, days_ago: float, hour: int | None = None) -> str:
        """A timestamp `days_ago` days before today (deterministic minute from the rng)."""
        base = self.today - timedelta(days=days_ago)
        h = hour if hour is not None else self.rng.randint(7, 21)
        return base.replace(hour=h, minute=self.rng.randint(0, 59), second=0).strftime("%Y-%m-%dT%H:%M:%S")

    def last_month(self) -> tuple[date, date, str]:
        """(first day, last day, 'Month YYYY') of the calendar month before today's."""
        first_this = self.today_date.replace(day=1)
        last_prev = first_this - timedelta(days=1)
        first_prev = last_prev.replace(day=1)
        return first_prev, last_prev, first_prev.strftime("%B %Y")

    def ts_between(self, start: date, end: date) -> str:
        span = (end - start).days
        d = start + timedelta(days=self.rng.randint(0, span))
        return datetime(d.year, d.month, d.day, self.rng.randint(7, 21), self.rng.randint(0, 59)).strftime(
            "%Y-%m-%dT%H:%M:%S")

    def person(self, role: str) -> Person:
        return next(p for p in self.contacts if p.relationship == role)

    def non_contacts(self) -> list[Person]:
        ids = {p.email for p in self.contacts}
        return [p for p in self.people if p.email not in ids]

    def song_title(self) -> str:
        return f"{self.rng.choice(WORDS)} {self.rng.choice(NOUNS)}"


DEFAULT_SIZES = {
    "people": 40,
    "contacts": 20,
    "inbox": 25,
    "sent": 5,
    "songs": 90,
    "library": 30,
    "likes": 15,
    "playlists": 6,
    "playlist_min": 5,
    "playlist_max": 10,
    "transactions": 20,
    "requests": 4,
    "groups": 3,
    "group_expenses": 6,
    "messages": 20,
    "notes": 12,
    "todos": 15,
    "files": 16,
}


def _password(rng: random.Random) -> str:
    return "".join(rng.choice(PASSWORD_ALPHABET) for _ in range(10))


def _phone(rng: random.Random, used: set[str]) -> str:
    while True:
        p = f"555{rng.randint(1000000, 9999999)}"
        if p not in used:
            used.add(p)
            return p


def build_world(task_key: str, sizes: dict[str, int] | None = None) -> SeedContext:
    """The base world for one task (deterministic in `task_key`)."""
    sz = {**DEFAULT_SIZES, **(sizes or {})}
    rng = random.Random(stable_seed("appworld-lite", task_key))
    today = datetime(2024, 1, 1, 9, 0, 0) + timedelta(days=rng.randint(45, 330))
    world = World(task_key, today, ALL_APPS)
    used_phones: set[str] = set()

    names = [(f, ln) for f in FIRST for ln in LAST]
    rng.shuffle(names)
    picked: list[tuple[str, str]] = []
    firsts: set[str] = set()
    for f, ln in names:  # unique first names keep instructions unambiguous
        if f in firsts:
            continue
        firsts.add(f)
        picked.append((f, ln))
        if len(picked) == sz["people"] + 1:
            break

    def mk(f: str, ln: str, domain: str) -> Person:
        by = rng.randint(1955, 2003)
        bday = date(by, 1, 1) + timedelta(days=rng.randint(0, 364))
        return Person(f, ln, f"{f.lower()}.{ln.lower()}@{domain}", _phone(rng, used_phones), bday.isoformat())

    user = mk(*picked[0], domain="mail.com")
    people = [mk(f, ln, rng.choice(["gmail.com", "outlook.com", "proton.me", "yahoo.com"])) for f, ln in picked[1:]]
    contacts = people[: sz["contacts"]]
    roles = list(RELATION_ROLES)
    for i, p in enumerate(contacts):
        p.relationship = roles[i] if i < len(roles) else rng.choice(["friend", "friend", "coworker", "family"])
    ctx = SeedContext(world, rng, today, user, people, contacts, sz)
    w = world

    # supervisor ------------------------------------------------------------------------------------------
    w.insert("supervisor_profile", id=1, first_name=user.first_name, last_name=user.last_name, email=user.email,
             phone_number=user.phone_number, birthday=user.birthday,
             address=f"{rng.randint(1, 999)} {rng.choice(WORDS)} Street, Springfield")
    for cls in ALL_APPS:
        if cls.name not in ("supervisor", "api_docs"):
            w.insert("supervisor_passwords", account_name=cls.name, password=_password(rng))

    # phone --------------------------------------------------------------------------------------------------
    for p in contacts:
        w.insert("phone_contacts", first_name=p.first_name, last_name=p.last_name, phone_number=p.phone_number,
                 email=p.email, relationship=p.relationship, birthday=p.birthday)
    for _ in range(sz["messages"]):
        p = rng.choice(contacts)
        incoming = rng.random() < 0.6
        w.insert("phone_messages", sender=p.phone_number if incoming else user.phone_number,
                 receiver=user.phone_number if incoming else p.phone_number,
                 text=rng.choice(["On my way!", "See you soon", "Call me when you can", "Thanks!", "Sounds good",
                                  "Running late", "Did you see that?", "Happy to help", "Let's do it"]),
                 sent_at=ctx.ts(rng.uniform(35, 120)))
    for t, label in (("06:30", "Wake up"), ("07:15", "Gym"), ("12:00", "Lunch"), ("22:30", "Bedtime")):
        w.insert("phone_alarms", time=t, label=label, enabled=int(rng.random() < 0.7))

    # email --------------------------------------------------------------------------------------------------
    for _ in range(sz["inbox"]):
        if rng.random() < 0.35:
            sender, sname = rng.choice(SERVICES)
        else:
            p = rng.choice(people)
            sender, sname = p.email, p.name
        w.insert("email_messages", folder="inbox", sender=sender, sender_name=sname,
                 recipients=json.dumps([user.email]), subject=rng.choice(GENERIC_SUBJECTS),
                 body=f"Hi {user.first_name},\n\n{rng.choice(WORDS)} {rng.choice(NOUNS).lower()} news. Talk soon.",
                 sent_at=ctx.ts(rng.uniform(0.5, 100)))
    for _ in range(sz["sent"]):
        p = rng.choice(people)
        w.insert("email_messages", folder="sent", sender=user.email, sender_name=user.name,
                 recipients=json.dumps([p.email]), subject=rng.choice(GENERIC_SUBJECTS),
                 body=f"Hi {p.first_name}, see you soon.", sent_at=ctx.ts(rng.uniform(1, 100)))

    # music --------------------------------------------------------------------------------------------------
    titles: set[str] = set()
    for sid in range(1, sz["songs"] + 1):
        t = ctx.song_title()
        while t in titles:
            t = ctx.song_title()
        titles.add(t)
        w.insert("music_songs", song_id=sid, title=t, artist=rng.choice(ARTISTS), album=f"{rng.choice(NOUNS)} Sessions",
                 genre=rng.choice(GENRES), duration_s=rng.randint(140, 330), release_year=rng.randint(1975, 2024))
    all_songs = list(range(1, sz["songs"] + 1))
    lib = rng.sample(all_songs, min(sz["library"], len(all_songs)))
    plays = rng.sample(range(1, 500), len(lib))  # distinct play counts
    for sid, pc in zip(sorted(lib), plays):
        w.insert("music_library", song_id=sid, play_count=pc, added_at=ctx.ts(rng.uniform(10, 300)))
    for sid in sorted(rng.sample(all_songs, min(sz["likes"], len(all_songs)))):
        w.insert("music_likes", song_id=sid, liked_at=ctx.ts(rng.uniform(5, 300)))
    pl_titles = rng.sample(PLAYLIST_WORDS, min(sz["playlists"], len(PLAYLIST_WORDS)))
    while len(pl_titles) < sz["playlists"]:
        pl_titles.append(f"Mix {len(pl_titles) + 1}")
    for t in pl_titles:
        pid = w.insert("music_playlists", title=t, created_at=ctx.ts(rng.uniform(20, 400)))
        for pos, sid in enumerate(rng.sample(all_songs, rng.randint(sz["playlist_min"], sz["playlist_max"])), 1):
            w.insert("music_playlist_songs", playlist_id=pid, song_id=sid, position=pos)

    # payments -----------------------------------------------------------------------------------------------
    w.insert("payments_account", id=1, balance_cents=rng.randint(400000, 900000))
    for p in [user, *people]:
        w.insert("payments_users", email=p.email, name=p.name)
    for _ in range(sz["transactions"]):
        p = rng.choice(people)
        out = rng.random() < 0.5
        w.insert("payments_transactions", sender_email=user.email if out else p.email,
                 receiver_email=p.email if out else user.email, amount_cents=rng.randint(500, 9000),
                 note=rng.choice(["Lunch", "Coffee", "Tickets", "Groceries", "Cab", "Gift", "Rent share", "Drinks"]),
                 created_at=ctx.ts(rng.uniform(40, 150)))
    for i in range(sz["requests"]):
        p = rng.choice(people)
        w.insert("payments_requests", requester_email=p.email, payer_email=user.email,
                 amount_cents=rng.randint(500, 6000), note=rng.choice(["Pizza", "Concert", "Taxi", "Brunch"]),
                 status=rng.choice(["approved", "denied"]) if i % 2 else "approved",
                 created_at=ctx.ts(rng.uniform(40, 150)))

    # expenses -----------------------------------------------------------------------------------------------
    for gname in rng.sample(GROUP_NAMES, sz["groups"]):
        gid = w.insert("expenses_groups", name=gname)
        members = [user, *rng.sample(people, rng.randint(2, 4))]
        for m in members:
            w.insert("expenses_members", group_id=gid, email=m.email, name=m.name)
        for _ in range(sz["group_expenses"]):
            add_expense(ctx, gid, members, rng.choice(members), rng.choice(["Groceries", "Dinner", "Gas", "Tickets",
                                                                           "Supplies", "Snacks"]),
                        rng.randint(1200, 15000), ctx.ts(rng.uniform(30, 200)))

    # notes ----------------------------------------------------------------------------------------------------
    for topic in rng.sample(NOTE_TOPICS, min(sz["notes"], len(NOTE_TOPICS))):
        w.insert("notes_notes", title=topic, content=f"{topic}:\n- {rng.choice(WORDS).lower()}\n- "
                 f"{rng.choice(NOUNS).lower()}", tags=json.dumps(rng.sample(["personal", "home", "ideas", "lists"], 1)),
                 pinned=int(rng.random() < 0.2), created_at=ctx.ts(rng.uniform(10, 300)),
                 updated_at=ctx.ts(rng.uniform(1, 9)))

    # todo -------------------------------------------------------------------------------------------------------
    for title in rng.sample(TODO_TITLES, min(sz["todos"], len(TODO_TITLES))):
        add_todo(ctx, title)

    # file system ----------------------------------------------------------------------------------------------
    for i in range(sz["files"]):
        folder = rng.choice(["~/documents", "~/photos", "~/music", "~/documents/work"])
        ext = {"~/photos": "jpg", "~/music": "mp3"}.get(folder, rng.choice(["txt", "md", "docx"]))
        w.insert("file_system_files", path=f"{folder}/{rng.choice(WORDS).lower()}_{i + 1}.{ext}",
                 content=f"{rng.choice(WORDS)} {rng.choice(NOUNS)}", created_at=ctx.ts(rng.uniform(5, 300)),
                 updated_at=ctx.ts(rng.uniform(1, 4)))
    return ctx


def add_expense(ctx: SeedContext, gid: int, members: list[Person], payer: Person, desc: str, amount_c: int,
                ts: str, split: dict[str, int] | None = None) -> int:
    w = ctx.world
    eid = w.insert("expenses_expenses", group_id=gid, description=desc, amount_cents=amount_c, paid_by=payer.email,
                   created_at=ts)
    if split is None:
        emails = sorted(m.email for m in members)
        base, rem = divmod(amount_c, len(emails))
        split = {e: base + (1 if i < rem else 0) for i, e in enumerate(emails)}
    for e, c in split.items():
        w.insert("expenses_shares", expense_id=eid, email=e, share_cents=c)
    return eid


def add_todo(ctx: SeedContext, title: str, due_days: int | None = None, priority: str | None = None,
             completed: bool | None = None) -> int:
    rng = ctx.rng
    if due_days is None:
        due_days = rng.randint(-20, 30)
    due = (ctx.today_date + timedelta(days=due_days)).isoformat()
    return ctx.world.insert("todo_tasks", title=title, due_date=due,
                            priority=priority or rng.choice(["low", "medium", "high"]),
                            completed=int(rng.random() < 0.3) if completed is None else int(completed),
                            created_at=ctx.ts(rng.uniform(30, 60)))
