"""The apps of appworld-lite. Each app keeps its state in SQLite tables prefixed with its name."""

from __future__ import annotations

import json
from typing import Annotated, Literal, Optional

from pydantic import Field

from .framework import APIError, App, PageIndex, api, cents, money

__all__ = ["ALL_APPS", "USER_APPS"]

Str = Annotated[str, Field(min_length=1)]
Amount = Annotated[float, Field(gt=0, le=100000, description="Amount in dollars, e.g. 12.5.")]
DateStr = Annotated[str, Field(pattern=r"^\d{4}-\d{2}-\d{2}$", description="A date as YYYY-MM-DD.")]


# ---------------------------------------------------------------------------------------------------------
class Supervisor(App):
    name = "supervisor"
    description = "The person you work for: their profile, their app passwords, and where you report completion."
    ddl = """
    CREATE TABLE supervisor_profile (id INTEGER PRIMARY KEY, first_name TEXT, last_name TEXT, email TEXT,
        phone_number TEXT, birthday TEXT, address TEXT);
    CREATE TABLE supervisor_passwords (account_name TEXT PRIMARY KEY, password TEXT NOT NULL);
    """

    @api("Show the supervisor's profile (name, email, phone number, birthday, address).", auth=False,
         returns="{first_name, last_name, email, phone_number, birthday, address}")
    def show_profile(self) -> dict:
        r = self.one("SELECT * FROM supervisor_profile WHERE id = 1")
        r.pop("id")
        return r

    @api("Show the supervisor's passwords for every app account. Log in to app X with username = the "
         "supervisor's email (phone number for the phone app) and the password of account X.", auth=False,
         returns="[{account_name, password}]")
    def show_account_passwords(self) -> list[dict]:
        return self.q("SELECT account_name, password FROM supervisor_passwords ORDER BY account_name")

    @api("Mark the task as complete. Pass `answer` when the task asks a question; omit it otherwise. "
         "Call this exactly once, at the very end.", auth=False, mutates=True, returns="{message}")
    def complete_task(self, answer: Optional[str | int | float] = None) -> dict:
        self.w.completed = True
        self.w.answer = answer
        return {"message": "Task marked as complete."}


class ApiDocs(App):
    name = "api_docs"
    description = "Machine-readable documentation of every app and API."

    @api("List all apps with a one-line description.", auth=False, returns="[{name, description}]")
    def show_app_descriptions(self) -> list[dict]:
        return [{"name": n, "description": type(a).description} for n, a in self.w.apps.items()]

    @api("List the APIs of one app with a one-line description each.", auth=False, returns="[{name, description}]")
    def show_api_descriptions(self, app_name: Str) -> list[dict]:
        if app_name not in self.w.apps:
            raise APIError("NotFound", f"No app named '{app_name}'.")
        return [{"name": s.name, "description": s.description} for s in type(self.w.apps[app_name]).specs().values()]

    @api("Show the full documentation (parameters, types, constraints, response) of one API.", auth=False,
         returns="{app_name, api_name, description, parameters, response, parameters_schema}")
    def show_api_doc(self, app_name: Str, api_name: Str) -> dict:
        if app_name not in self.w.apps:
            raise APIError("NotFound", f"No app named '{app_name}'.")
        specs = type(self.w.apps[app_name]).specs()
        if api_name not in specs:
            raise APIError("NotFound", f"App '{app_name}' has no API '{api_name}'.")
        return specs[api_name].doc()


def _user_email(app: App) -> str:
    return app.w.q("SELECT email FROM supervisor_profile WHERE id = 1")[0]["email"]


def _user_phone(app: App) -> str:
    return app.w.q("SELECT phone_number FROM supervisor_profile WHERE id = 1")[0]["phone_number"]


# ---------------------------------------------------------------------------------------------------------
class Email(App):
    name = "email"
    description = "Email: inbox, sent mail, sending, replying, forwarding and deleting emails."
    ddl = """
    CREATE TABLE email_messages (email_id INTEGER PRIMARY KEY AUTOINCREMENT, folder TEXT NOT NULL,
        sender TEXT NOT NULL, sender_name TEXT, recipients TEXT NOT NULL, subject TEXT NOT NULL, body TEXT NOT NULL,
        sent_at TEXT NOT NULL);
    """

    @api("Log in to email. username = the supervisor's email address.", auth=False,
         returns="{access_token, token_type, expires_in_calls}")
    def login(self, username: Str, password: Str) -> dict:
        return self.check_login(username, password, _user_email(self))

    def _row(self, r: dict, full: bool) -> dict:
        out = {"email_id": r["email_id"], "sender": r["sender"], "sender_name": r["sender_name"],
               "subject": r["subject"], "sent_at": r["sent_at"]}
        if full:
            out["recipients"] = json.loads(r["recipients"])
            out["body"] = r["body"]
            out["folder"] = r["folder"]
        return out

    @api("List emails in the inbox, newest first (no bodies; use show_email).", paginated=True,
         returns="{items: [{email_id, sender, sender_name, subject, sent_at}], page_index, has_more}")
    def show_inbox(self, page_index: PageIndex = 0) -> dict:
        rows = self.q("SELECT * FROM email_messages WHERE folder = 'inbox' ORDER BY sent_at DESC, email_id DESC")
        return self.page([self._row(r, False) for r in rows], page_index)

    @api("List sent emails, newest first.", paginated=True,
         returns="{items: [{email_id, sender, sender_name, subject, sent_at}], page_index, has_more}")
    def show_sent(self, page_index: PageIndex = 0) -> dict:
        rows = self.q("SELECT * FROM email_messages WHERE folder = 'sent' ORDER BY sent_at DESC, email_id DESC")
        return self.page([self._row(r, False) for r in rows], page_index)

    @api("Show one email with its body and recipients.",
         returns="{email_id, sender, sender_name, subject, sent_at, recipients, body, folder}")
    def show_email(self, email_id: int) -> dict:
        return self._row(self.one("SELECT * FROM email_messages WHERE email_id = ?", (email_id,), "email"), True)

    def _send(self, recipients: list[str], subject: str, body: str) -> int:
        me = self.q("SELECT first_name, last_name FROM supervisor_profile WHERE id = 1")[0]
        return self.w.insert("email_messages", folder="sent", sender=_user_email(self),
                             sender_name=f"{me['first_name']} {me['last_name']}", recipients=json.dumps(recipients),
                             subject=subject, body=body, sent_at=self.w.now_iso())

    @api("Send a new email.", mutates=True, returns="{email_id}")
    def send_email(self, recipients: Annotated[list[str], Field(min_length=1)], subject: Str, body: str) -> dict:
        return {"email_id": self._send(recipients, subject, body)}

    @api("Reply to an email: sends `body` to its sender with subject 'Re: <subject>'.", mutates=True,
         returns="{email_id}")
    def reply_to_email(self, email_id: int, body: Str) -> dict:
        r = self.one("SELECT * FROM email_messages WHERE email_id = ?", (email_id,), "email")
        return {"email_id": self._send([r["sender"]], f"Re: {r['subject']}", body)}

    @api("Forward an email: sends its subject ('Fwd: <subject>') and body to the recipients.", mutates=True,
         returns="{email_id}")
    def forward_email(self, email_id: int, recipients: Annotated[list[str], Field(min_length=1)]) -> dict:
        r = self.one("SELECT * FROM email_messages WHERE email_id = ?", (email_id,), "email")
        return {"email_id": self._send(recipients, f"Fwd: {r['subject']}", r["body"])}

    @api("Delete an email permanently.", mutates=True, returns="{message}")
    def delete_email(self, email_id: int) -> dict:
        self.one("SELECT email_id FROM email_messages WHERE email_id = ?", (email_id,), "email")
        self.x("DELETE FROM email_messages WHERE email_id = ?", (email_id,))
        return {"message": "Email deleted."}


# ---------------------------------------------------------------------------------------------------------
class Music(App):
    name = "music"
    description = "Music streaming: song library, liked songs, playlists."
    ddl = """
    CREATE TABLE music_songs (song_id INTEGER PRIMARY KEY, title TEXT, artist TEXT, album TEXT, genre TEXT,
        duration_s INTEGER, release_year INTEGER);
    CREATE TABLE music_library (song_id INTEGER PRIMARY KEY, play_count INTEGER NOT NULL, added_at TEXT);
    CREATE TABLE music_likes (song_id INTEGER PRIMARY KEY, liked_at TEXT);
    CREATE TABLE music_playlists (playlist_id INTEGER PRIMARY KEY AUTOINCREMENT, title TEXT NOT NULL,
        created_at TEXT);
    CREATE TABLE music_playlist_songs (playlist_id INTEGER NOT NULL, song_id INTEGER NOT NULL,
        position INTEGER NOT NULL, PRIMARY KEY (playlist_id, song_id));
    """

    @api("Log in to music. username = the supervisor's email address.", auth=False,
         returns="{access_token, token_type, expires_in_calls}")
    def login(self, username: Str, password: Str) -> dict:
        return self.check_login(username, password, _user_email(self))

    def _song(self, song_id: int) -> dict:
        return self.one("SELECT * FROM music_songs WHERE song_id = ?", (song_id,), "song")

    @api("List the songs in the user's library (ordered by song_id).", paginated=True,
         returns="{items: [{song_id, title, artist, genre}], page_index, has_more}")
    def show_song_library(self, page_index: PageIndex = 0) -> dict:
        rows = self.q("SELECT s.song_id, s.title, s.artist, s.genre FROM music_library l JOIN music_songs s "
                      "ON s.song_id = l.song_id ORDER BY s.song_id")
        return self.page(rows, page_index)

    @api("Show a song's details, including whether it is liked and the user's play count.",
         returns="{song_id, title, artist, album, genre, duration_s, release_year, liked, in_library, play_count}")
    def show_song(self, song_id: int) -> dict:
        s = self._song(song_id)
        lib = self.q("SELECT play_count FROM music_library WHERE song_id = ?", (song_id,))
        s["liked"] = bool(self.q("SELECT 1 FROM music_likes WHERE song_id = ?", (song_id,)))
        s["in_library"] = bool(lib)
        s["play_count"] = lib[0]["play_count"] if lib else 0
        return s

    @api("List liked songs (ordered by song_id).", paginated=True,
         returns="{items: [{song_id, title, artist}], page_index, has_more}")
    def show_liked_songs(self, page_index: PageIndex = 0) -> dict:
        rows = self.q("SELECT s.song_id, s.title, s.artist FROM music_likes l JOIN music_songs s "
                      "ON s.song_id = l.song_id ORDER BY s.song_id")
        return self.page(rows, page_index)

    @api("List the user's playlists (ordered by playlist_id).", paginated=True,
         returns="{items: [{playlist_id, title, num_songs}], page_index, has_more}")
    def show_playlist_library(self, page_index: PageIndex = 0) -> dict:
        rows = self.q("SELECT p.playlist_id, p.title, (SELECT COUNT(*) FROM music_playlist_songs ps WHERE "
                      "ps.playlist_id = p.playlist_id) AS num_songs FROM music_playlists p ORDER BY p.playlist_id")
        return self.page(rows, page_index)

    @api("List the songs of a playlist in playlist order.", paginated=True,
         returns="{items: [{song_id, title, artist, genre}], page_index, has_more}")
    def show_playlist_songs(self, playlist_id: int, page_index: PageIndex = 0) -> dict:
        self.one("SELECT 1 FROM music_playlists WHERE playlist_id = ?", (playlist_id,), "playlist")
        rows = self.q("SELECT s.song_id, s.title, s.artist, s.genre FROM music_playlist_songs ps JOIN music_songs s "
                      "ON s.song_id = ps.song_id WHERE ps.playlist_id = ? ORDER BY ps.position", (playlist_id,))
        return self.page(rows, page_index)

    @api("Like a song.", mutates=True, returns="{message}")
    def like_song(self, song_id: int) -> dict:
        self._song(song_id)
        self.x("INSERT OR IGNORE INTO music_likes (song_id, liked_at) VALUES (?, ?)", (song_id, self.w.now_iso()))
        return {"message": "Song liked."}

    @api("Remove a song from liked songs.", mutates=True, returns="{message}")
    def unlike_song(self, song_id: int) -> dict:
        self._song(song_id)
        self.x("DELETE FROM music_likes WHERE song_id = ?", (song_id,))
        return {"message": "Song unliked."}

    @api("Create an empty playlist.", mutates=True, returns="{playlist_id}")
    def create_playlist(self, title: Str) -> dict:
        return {"playlist_id": self.w.insert("music_playlists", title=title, created_at=self.w.now_iso())}

    @api("Add a song at the end of a playlist.", mutates=True, returns="{message}")
    def add_song_to_playlist(self, playlist_id: int, song_id: int) -> dict:
        self.one("SELECT 1 FROM music_playlists WHERE playlist_id = ?", (playlist_id,), "playlist")
        self._song(song_id)
        if self.q("SELECT 1 FROM music_playlist_songs WHERE playlist_id = ? AND song_id = ?", (playlist_id, song_id)):
            raise APIError("Conflict", "The song is already in this playlist.")
        pos = self.q("SELECT COALESCE(MAX(position), 0) + 1 AS p FROM music_playlist_songs WHERE playlist_id = ?",
                     (playlist_id,))[0]["p"]
        self.w.insert("music_playlist_songs", playlist_id=playlist_id, song_id=song_id, position=pos)
        return {"message": "Song added to playlist."}

    @api("Remove a song from a playlist.", mutates=True, returns="{message}")
    def remove_song_from_playlist(self, playlist_id: int, song_id: int) -> dict:
        self.one("SELECT 1 FROM music_playlist_songs WHERE playlist_id = ? AND song_id = ?", (playlist_id, song_id),
                 "song in this playlist")
        self.x("DELETE FROM music_playlist_songs WHERE playlist_id = ? AND song_id = ?", (playlist_id, song_id))
        return {"message": "Song removed from playlist."}

    @api("Delete a playlist.", mutates=True, returns="{message}")
    def delete_playlist(self, playlist_id: int) -> dict:
        self.one("SELECT 1 FROM music_playlists WHERE playlist_id = ?", (playlist_id,), "playlist")
        self.x("DELETE FROM music_playlist_songs WHERE playlist_id = ?", (playlist_id,))
        self.x("DELETE FROM music_playlists WHERE playlist_id = ?", (playlist_id,))
        return {"message": "Playlist deleted."}


# ---------------------------------------------------------------------------------------------------------
class Payments(App):
    name = "payments"
    description = "Peer-to-peer payments: balance, transactions, sending money, payment requests."
    ddl = """
    CREATE TABLE payments_users (email TEXT PRIMARY KEY, name TEXT);
    CREATE TABLE payments_account (id INTEGER PRIMARY KEY, balance_cents INTEGER NOT NULL);
    CREATE TABLE payments_transactions (transaction_id INTEGER PRIMARY KEY AUTOINCREMENT, sender_email TEXT,
        receiver_email TEXT, amount_cents INTEGER, note TEXT, created_at TEXT);
    CREATE TABLE payments_requests (request_id INTEGER PRIMARY KEY AUTOINCREMENT, requester_email TEXT,
        payer_email TEXT, amount_cents INTEGER, note TEXT, status TEXT, created_at TEXT);
    """

    @api("Log in to payments. username = the supervisor's email address.", auth=False,
         returns="{access_token, token_type, expires_in_calls}")
    def login(self, username: Str, password: Str) -> dict:
        return self.check_login(username, password, _user_email(self))

    @api("Show the account balance.", returns="{balance}")
    def show_balance(self) -> dict:
        return {"balance": money(self.q("SELECT balance_cents FROM payments_account WHERE id = 1")[0]["balance_cents"])}

    @api("List transactions (sent and received), newest first.", paginated=True,
         returns="{items: [{transaction_id, sender_email, receiver_email, amount, note, created_at}], page_index, "
                 "has_more}")
    def show_transactions(self, page_index: PageIndex = 0) -> dict:
        rows = self.q("SELECT * FROM payments_transactions ORDER BY created_at DESC, transaction_id DESC")
        items = [{"transaction_id": r["transaction_id"], "sender_email": r["sender_email"],
                  "receiver_email": r["receiver_email"], "amount": money(r["amount_cents"]), "note": r["note"],
                  "created_at": r["created_at"]} for r in rows]
        return self.page(items, page_index)

    def _pay(self, receiver_email: str, amount_c: int, note: str) -> int:
        if not self.q("SELECT 1 FROM payments_users WHERE email = ?", (receiver_email,)):
            raise APIError("NotFound", f"No payments user with email '{receiver_email}'.")
        bal = self.q("SELECT balance_cents FROM payments_account WHERE id = 1")[0]["balance_cents"]
        if amount_c > bal:
            raise APIError("InsufficientFunds", "Not enough balance.")
        self.x("UPDATE payments_account SET balance_cents = balance_cents - ? WHERE id = 1", (amount_c,))
        return self.w.insert("payments_transactions", sender_email=_user_email(self), receiver_email=receiver_email,
                             amount_cents=amount_c, note=note, created_at=self.w.now_iso())

    @api("Send money to another user.", mutates=True, returns="{transaction_id}")
    def send_money(self, receiver_email: Str, amount: Amount, note: str = "") -> dict:
        return {"transaction_id": self._pay(receiver_email, cents(amount), note)}

    @api("List payment requests other users sent to you, newest first, filtered by status.", paginated=True,
         returns="{items: [{request_id, requester_email, amount, note, status, created_at}], page_index, has_more}")
    def show_payment_requests(self, status: Literal["pending", "approved", "denied"] = "pending",
                              page_index: PageIndex = 0) -> dict:
        rows = self.q("SELECT * FROM payments_requests WHERE payer_email = ? AND status = ? "
                      "ORDER BY created_at DESC, request_id DESC", (_user_email(self), status))
        items = [{"request_id": r["request_id"], "requester_email": r["requester_email"],
                  "amount": money(r["amount_cents"]), "note": r["note"], "status": r["status"],
                  "created_at": r["created_at"]} for r in rows]
        return self.page(items, page_index)

    def _pending(self, request_id: int) -> dict:
        r = self.one("SELECT * FROM payments_requests WHERE request_id = ? AND payer_email = ?",
                     (request_id, _user_email(self)), "payment request")
        if r["status"] != "pending":
            raise APIError("InvalidRequest", f"The request is already {r['status']}.")
        return r

    @api("Approve (pay) a pending payment request.", mutates=True, returns="{transaction_id}")
    def approve_payment_request(self, request_id: int) -> dict:
        r = self._pending(request_id)
        tid = self._pay(r["requester_email"], r["amount_cents"], r["note"])
        self.x("UPDATE payments_requests SET status = 'approved' WHERE request_id = ?", (request_id,))
        return {"transaction_id": tid}

    @api("Deny a pending payment request.", mutates=True, returns="{message}")
    def deny_payment_request(self, request_id: int) -> dict:
        self._pending(request_id)
        self.x("UPDATE payments_requests SET status = 'denied' WHERE request_id = ?", (request_id,))
        return {"message": "Request denied."}

    @api("Request money from another user.", mutates=True, returns="{request_id}")
    def request_money(self, user_email: Str, amount: Amount, note: str = "") -> dict:
        if not self.q("SELECT 1 FROM payments_users WHERE email = ?", (user_email,)):
            raise APIError("NotFound", f"No payments user with email '{user_email}'.")
        rid = self.w.insert("payments_requests", requester_email=_user_email(self), payer_email=user_email,
                            amount_cents=cents(amount), note=note, status="pending", created_at=self.w.now_iso())
        return {"request_id": rid}


# ---------------------------------------------------------------------------------------------------------
class Expenses(App):
    name = "expenses"
    description = "Shared expenses: groups, expenses split between members, settlements."
    ddl = """
    CREATE TABLE expenses_groups (group_id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL);
    CREATE TABLE expenses_members (group_id INTEGER NOT NULL, email TEXT NOT NULL, name TEXT,
        PRIMARY KEY (group_id, email));
    CREATE TABLE expenses_expenses (expense_id INTEGER PRIMARY KEY AUTOINCREMENT, group_id INTEGER NOT NULL,
        description TEXT, amount_cents INTEGER, paid_by TEXT, created_at TEXT);
    CREATE TABLE expenses_shares (expense_id INTEGER NOT NULL, email TEXT NOT NULL, share_cents INTEGER NOT NULL,
        PRIMARY KEY (expense_id, email));
    CREATE TABLE expenses_settlements (settlement_id INTEGER PRIMARY KEY AUTOINCREMENT, group_id INTEGER NOT NULL,
        payer_email TEXT, payee_email TEXT, amount_cents INTEGER, created_at TEXT);
    """

    @api("Log in to expenses. username = the supervisor's email address.", auth=False,
         returns="{access_token, token_type, expires_in_calls}")
    def login(self, username: Str, password: Str) -> dict:
        return self.check_login(username, password, _user_email(self))

    def _group(self, group_id: int) -> dict:
        return self.one("SELECT * FROM expenses_groups WHERE group_id = ?", (group_id,), "group")

    @api("List your groups.", paginated=True, returns="{items: [{group_id, name}], page_index, has_more}")
    def show_groups(self, page_index: PageIndex = 0) -> dict:
        return self.page(self.q("SELECT group_id, name FROM expenses_groups ORDER BY group_id"), page_index)

    @api("Show a group and its members.", returns="{group_id, name, members: [{email, name}]}")
    def show_group(self, group_id: int) -> dict:
        g = self._group(group_id)
        g["members"] = self.q("SELECT email, name FROM expenses_members WHERE group_id = ? ORDER BY email",
                              (group_id,))
        return g

    @api("List a group's expenses, newest first (without the split; use show_expense).", paginated=True,
         returns="{items: [{expense_id, description, amount, paid_by, created_at}], page_index, has_more}")
    def show_group_expenses(self, group_id: int, page_index: PageIndex = 0) -> dict:
        self._group(group_id)
        rows = self.q("SELECT * FROM expenses_expenses WHERE group_id = ? ORDER BY created_at DESC, expense_id DESC",
                      (group_id,))
        items = [{"expense_id": r["expense_id"], "description": r["description"], "amount": money(r["amount_cents"]),
                  "paid_by": r["paid_by"], "created_at": r["created_at"]} for r in rows]
        return self.page(items, page_index)

    @api("Show one expense with its split: `shares` says how much each member owes of it.",
         returns="{expense_id, group_id, description, amount, paid_by, created_at, shares: [{email, share}]}")
    def show_expense(self, expense_id: int) -> dict:
        r = self.one("SELECT * FROM expenses_expenses WHERE expense_id = ?", (expense_id,), "expense")
        shares = self.q("SELECT email, share_cents FROM expenses_shares WHERE expense_id = ? ORDER BY email",
                        (expense_id,))
        return {"expense_id": r["expense_id"], "group_id": r["group_id"], "description": r["description"],
                "amount": money(r["amount_cents"]), "paid_by": r["paid_by"], "created_at": r["created_at"],
                "shares": [{"email": s["email"], "share": money(s["share_cents"])} for s in shares]}

    @api("List a group's settlements (payments between members), newest first.", paginated=True,
         returns="{items: [{settlement_id, payer_email, payee_email, amount, created_at}], page_index, has_more}")
    def show_settlements(self, group_id: int, page_index: PageIndex = 0) -> dict:
        self._group(group_id)
        rows = self.q("SELECT * FROM expenses_settlements WHERE group_id = ? ORDER BY created_at DESC, "
                      "settlement_id DESC", (group_id,))
        items = [{"settlement_id": r["settlement_id"], "payer_email": r["payer_email"],
                  "payee_email": r["payee_email"], "amount": money(r["amount_cents"]),
                  "created_at": r["created_at"]} for r in rows]
        return self.page(items, page_index)

    @api("Add an expense paid by you. Without `shares` it is split equally among all members (you included; "
         "leftover cents go to members in email order); with `shares` ({email: amount}) they must sum to amount.",
         mutates=True, returns="{expense_id}")
    def add_expense(self, group_id: int, description: Str, amount: Amount,
                    shares: Optional[dict[str, float]] = None) -> dict:
        self._group(group_id)
        members = [m["email"] for m in self.q("SELECT email FROM expenses_members WHERE group_id = ? ORDER BY email",
                                              (group_id,))]
        total = cents(amount)
        if shares is None:
            base, rem = divmod(total, len(members))
            split = {m: base + (1 if i < rem else 0) for i, m in enumerate(members)}
        else:
            split = {e: cents(v) for e, v in shares.items()}
            unknown = [e for e in split if e not in members]
            if unknown:
                raise APIError("InvalidRequest", f"Not members of the group: {', '.join(unknown)}.")
            if sum(split.values()) != total:
                raise APIError("InvalidRequest", "The shares must add up to the amount.")
        eid = self.w.insert("expenses_expenses", group_id=group_id, description=description, amount_cents=total,
                            paid_by=_user_email(self), created_at=self.w.now_iso())
        for e, c in split.items():
            self.w.insert("expenses_shares", expense_id=eid, email=e, share_cents=c)
        return {"expense_id": eid}

    @api("Record that you paid a group member (settling up in that group).", mutates=True,
         returns="{settlement_id}")
    def record_settlement(self, group_id: int, payee_email: Str, amount: Amount) -> dict:
        self._group(group_id)
        if not self.q("SELECT 1 FROM expenses_members WHERE group_id = ? AND email = ?", (group_id, payee_email)):
            raise APIError("NotFound", f"'{payee_email}' is not a member of this group.")
        sid = self.w.insert("expenses_settlements", group_id=group_id, payer_email=_user_email(self),
                            payee_email=payee_email, amount_cents=cents(amount), created_at=self.w.now_iso())
        return {"settlement_id": sid}


# ---------------------------------------------------------------------------------------------------------
class Phone(App):
    name = "phone"
    description = "Phone: contacts, text messages, alarms."
    ddl = """
    CREATE TABLE phone_contacts (contact_id INTEGER PRIMARY KEY AUTOINCREMENT, first_name TEXT, last_name TEXT,
        phone_number TEXT, email TEXT, relationship TEXT, birthday TEXT);
    CREATE TABLE phone_messages (message_id INTEGER PRIMARY KEY AUTOINCREMENT, sender TEXT, receiver TEXT,
        text TEXT, sent_at TEXT);
    CREATE TABLE phone_alarms (alarm_id INTEGER PRIMARY KEY AUTOINCREMENT, time TEXT, label TEXT,
        enabled INTEGER);
    """

    @api("Log in to phone. username = the supervisor's phone number.", auth=False,
         returns="{access_token, token_type, expires_in_calls}")
    def login(self, username: Str, password: Str) -> dict:
        return self.check_login(username, password, _user_phone(self))

    @api("List contacts ordered by contact_id, optionally only those with a given relationship.", paginated=True,
         returns="{items: [{contact_id, first_name, last_name, phone_number, email, relationship, birthday}], "
                 "page_index, has_more}")
    def show_contacts(self, relationship: Optional[str] = None, page_index: PageIndex = 0) -> dict:
        if relationship is None:
            rows = self.q("SELECT * FROM phone_contacts ORDER BY contact_id")
        else:
            rows = self.q("SELECT * FROM phone_contacts WHERE relationship = ? ORDER BY contact_id", (relationship,))
        return self.page(rows, page_index)

    @api("Add a contact.", mutates=True, returns="{contact_id}")
    def add_contact(self, first_name: Str, last_name: str, phone_number: Optional[str] = None,
                    email: Optional[str] = None, relationship: Optional[str] = None,
                    birthday: Optional[DateStr] = None) -> dict:
        cid = self.w.insert("phone_contacts", first_name=first_name, last_name=last_name, phone_number=phone_number,
                            email=email, relationship=relationship, birthday=birthday)
        return {"contact_id": cid}

    @api("Update fields of a contact (only the given ones).", mutates=True, returns="{message}")
    def update_contact(self, contact_id: int, phone_number: Optional[str] = None, email: Optional[str] = None,
                       relationship: Optional[str] = None) -> dict:
        self.one("SELECT 1 FROM phone_contacts WHERE contact_id = ?", (contact_id,), "contact")
        for col, v in (("phone_number", phone_number), ("email", email), ("relationship", relationship)):
            if v is not None:
                self.x(f"UPDATE phone_contacts SET {col} = ? WHERE contact_id = ?", (v, contact_id))
        return {"message": "Contact updated."}

    @api("List text messages (sent and received), newest first, optionally only those exchanged with one "
         "phone number.", paginated=True,
         returns="{items: [{message_id, sender, receiver, text, sent_at}], page_index, has_more}")
    def show_text_messages(self, phone_number: Optional[str] = None, page_index: PageIndex = 0) -> dict:
        if phone_number is None:
            rows = self.q("SELECT * FROM phone_messages ORDER BY sent_at DESC, message_id DESC")
        else:
            rows = self.q("SELECT * FROM phone_messages WHERE sender = ? OR receiver = ? "
                          "ORDER BY sent_at DESC, message_id DESC", (phone_number, phone_number))
        return self.page(rows, page_index)

    @api("Send a text message.", mutates=True, returns="{message_id}")
    def send_text_message(self, phone_number: Str, text: Str) -> dict:
        mid = self.w.insert("phone_messages", sender=_user_phone(self), receiver=phone_number, text=text,
                            sent_at=self.w.now_iso())
        return {"message_id": mid}

    @api("Delete a text message.", mutates=True, returns="{message}")
    def delete_text_message(self, message_id: int) -> dict:
        self.one("SELECT 1 FROM phone_messages WHERE message_id = ?", (message_id,), "message")
        self.x("DELETE FROM phone_messages WHERE message_id = ?", (message_id,))
        return {"message": "Message deleted."}

    @api("List alarms.", paginated=True, returns="{items: [{alarm_id, time, label, enabled}], page_index, has_more}")
    def show_alarms(self, page_index: PageIndex = 0) -> dict:
        rows = self.q("SELECT * FROM phone_alarms ORDER BY alarm_id")
        for r in rows:
            r["enabled"] = bool(r["enabled"])
        return self.page(rows, page_index)

    @api("Enable or disable an alarm.", mutates=True, returns="{message}")
    def update_alarm(self, alarm_id: int, enabled: bool) -> dict:
        self.one("SELECT 1 FROM phone_alarms WHERE alarm_id = ?", (alarm_id,), "alarm")
        self.x("UPDATE phone_alarms SET enabled = ? WHERE alarm_id = ?", (int(enabled), alarm_id))
        return {"message": "Alarm updated."}


# ---------------------------------------------------------------------------------------------------------
class Notes(App):
    name = "notes"
    description = "Notes: titled text notes with tags."
    ddl = """
    CREATE TABLE notes_notes (note_id INTEGER PRIMARY KEY AUTOINCREMENT, title TEXT NOT NULL, content TEXT,
        tags TEXT, pinned INTEGER, created_at TEXT, updated_at TEXT);
    """

    @api("Log in to notes. username = the supervisor's email address.", auth=False,
         returns="{access_token, token_type, expires_in_calls}")
    def login(self, username: Str, password: Str) -> dict:
        return self.check_login(username, password, _user_email(self))

    @api("List notes ordered by note_id (without content; use show_note).", paginated=True,
         returns="{items: [{note_id, title, tags, pinned}], page_index, has_more}")
    def show_notes(self, page_index: PageIndex = 0) -> dict:
        rows = self.q("SELECT note_id, title, tags, pinned FROM notes_notes ORDER BY note_id")
        for r in rows:
            r["tags"] = json.loads(r["tags"] or "[]")
            r["pinned"] = bool(r["pinned"])
        return self.page(rows, page_index)

    @api("Show a note with its content.", returns="{note_id, title, content, tags, pinned, created_at, updated_at}")
    def show_note(self, note_id: int) -> dict:
        r = self.one("SELECT * FROM notes_notes WHERE note_id = ?", (note_id,), "note")
        r["tags"] = json.loads(r["tags"] or "[]")
        r["pinned"] = bool(r["pinned"])
        return r

    @api("Create a note.", mutates=True, returns="{note_id}")
    def create_note(self, title: Str, content: str, tags: list[str] = []) -> dict:  # noqa: B006
        nid = self.w.insert("notes_notes", title=title, content=content, tags=json.dumps(list(tags)), pinned=0,
                            created_at=self.w.now_iso(), updated_at=self.w.now_iso())
        return {"note_id": nid}

    @api("Update a note's title, content and/or tags (only the given ones).", mutates=True, returns="{message}")
    def update_note(self, note_id: int, title: Optional[str] = None, content: Optional[str] = None,
                    tags: Optional[list[str]] = None) -> dict:
        self.one("SELECT 1 FROM notes_notes WHERE note_id = ?", (note_id,), "note")
        for col, v in (("title", title), ("content", content), ("tags", None if tags is None else json.dumps(tags))):
            if v is not None:
                self.x(f"UPDATE notes_notes SET {col} = ?, updated_at = ? WHERE note_id = ?",
                       (v, self.w.now_iso(), note_id))
        return {"message": "Note updated."}

    @api("Delete a note.", mutates=True, returns="{message}")
    def delete_note(self, note_id: int) -> dict:
        self.one("SELECT 1 FROM notes_notes WHERE note_id = ?", (note_id,), "note")
        self.x("DELETE FROM notes_notes WHERE note_id = ?", (note_id,))
        return {"message": "Note deleted."}


# ---------------------------------------------------------------------------------------------------------
class Todo(App):
    name = "todo"
    description = "To-do list: tasks with due dates and priorities."
    ddl = """
    CREATE TABLE todo_tasks (task_id INTEGER PRIMARY KEY AUTOINCREMENT, title TEXT NOT NULL, due_date TEXT,
        priority TEXT, completed INTEGER, created_at TEXT);
    """

    @api("Log in to todo. username = the supervisor's email address.", auth=False,
         returns="{access_token, token_type, expires_in_calls}")
    def login(self, username: Str, password: Str) -> dict:
        return self.check_login(username, password, _user_email(self))

    @api("List tasks ordered by task_id, optionally only completed or only incomplete ones.", paginated=True,
         returns="{items: [{task_id, title, due_date, priority, completed}], page_index, has_more}")
    def show_tasks(self, completed: Optional[bool] = None, page_index: PageIndex = 0) -> dict:
        if completed is None:
            rows = self.q("SELECT * FROM todo_tasks ORDER BY task_id")
        else:
            rows = self.q("SELECT * FROM todo_tasks WHERE completed = ? ORDER BY task_id", (int(completed),))
        items = [{"task_id": r["task_id"], "title": r["title"], "due_date": r["due_date"], "priority": r["priority"],
                  "completed": bool(r["completed"])} for r in rows]
        return self.page(items, page_index)

    @api("Create a task.", mutates=True, returns="{task_id}")
    def create_task(self, title: Str, due_date: Optional[DateStr] = None,
                    priority: Literal["low", "medium", "high"] = "medium") -> dict:
        tid = self.w.insert("todo_tasks", title=title, due_date=due_date, priority=priority, completed=0,
                            created_at=self.w.now_iso())
        return {"task_id": tid}

    @api("Mark a task as done.", mutates=True, returns="{message}")
    def mark_task_done(self, task_id: int) -> dict:
        self.one("SELECT 1 FROM todo_tasks WHERE task_id = ?", (task_id,), "task")
        self.x("UPDATE todo_tasks SET completed = 1 WHERE task_id = ?", (task_id,))
        return {"message": "Task marked as done."}

    @api("Change a task's due date and/or priority.", mutates=True, returns="{message}")
    def update_task(self, task_id: int, due_date: Optional[DateStr] = None,
                    priority: Optional[Literal["low", "medium", "high"]] = None) -> dict:
        self.one("SELECT 1 FROM todo_tasks WHERE task_id = ?", (task_id,), "task")
        if due_date is not None:
            self.x("UPDATE todo_tasks SET due_date = ? WHERE task_id = ?", (due_date, task_id))
        if priority is not None:
            self.x("UPDATE todo_tasks SET priority = ? WHERE task_id = ?", (priority, task_id))
        return {"message": "Task updated."}

    @api("Delete a task.", mutates=True, returns="{message}")
    def delete_task(self, task_id: int) -> dict:
        self.one("SELECT 1 FROM todo_tasks WHERE task_id = ?", (task_id,), "task")
        self.x("DELETE FROM todo_tasks WHERE task_id = ?", (task_id,))
        return {"message": "Task deleted."}


# ---------------------------------------------------------------------------------------------------------
def _norm_path(p: str) -> str:
    p = p.strip()
    if not p.startswith("~/") and p != "~":
        raise APIError("InvalidRequest", "Paths start with '~/' (e.g. '~/documents/report.txt').")
    return p.rstrip("/") if p != "~/" else "~"


class FileSystem(App):
    name = "file_system"
    description = "File system: directories and text files under ~/."
    ddl = """
    CREATE TABLE file_system_files (path TEXT PRIMARY KEY, content TEXT, created_at TEXT, updated_at TEXT);
    """

    @api("Log in to file_system. username = the supervisor's email address.", auth=False,
         returns="{access_token, token_type, expires_in_calls}")
    def login(self, username: Str, password: Str) -> dict:
        return self.check_login(username, password, _user_email(self))

    @api("List the entries (files and sub-directories) directly inside a directory, sorted by name.",
         paginated=True, returns="{items: [{name, path, type: 'file'|'directory'}], page_index, has_more}")
    def show_directory(self, directory: Str, page_index: PageIndex = 0) -> dict:
        d = _norm_path(directory)
        prefix = d + "/"
        entries: dict[str, str] = {}
        for r in self.q("SELECT path FROM file_system_files WHERE path LIKE ? ORDER BY path", (prefix + "%",)):
            rest = r["path"][len(prefix):]
            name, sep, _ = rest.partition("/")
            entries[name] = "directory" if sep else entries.get(name, "file")
        if not entries:
            raise APIError("NotFound", f"No directory '{d}'.")
        items = [{"name": n, "path": prefix + n, "type": t} for n, t in sorted(entries.items())]
        return self.page(items, page_index)

    @api("Show a file's content.", returns="{path, content, created_at, updated_at}")
    def show_file(self, path: Str) -> dict:
        return self.one("SELECT * FROM file_system_files WHERE path = ?", (_norm_path(path),), "file")

    @api("Create a file (fails if it exists).", mutates=True, returns="{path}")
    def create_file(self, path: Str, content: str) -> dict:
        p = _norm_path(path)
        if self.q("SELECT 1 FROM file_system_files WHERE path = ?", (p,)):
            raise APIError("Conflict", f"'{p}' already exists.")
        self.w.insert("file_system_files", path=p, content=content, created_at=self.w.now_iso(),
                      updated_at=self.w.now_iso())
        return {"path": p}

    @api("Delete a file.", mutates=True, returns="{message}")
    def delete_file(self, path: Str) -> dict:
        p = _norm_path(path)
        self.one("SELECT 1 FROM file_system_files WHERE path = ?", (p,), "file")
        self.x("DELETE FROM file_system_files WHERE path = ?", (p,))
        return {"message": "File deleted."}

    @api("Move (rename) a file to a new full path.", mutates=True, returns="{path}")
    def move_file(self, source_path: Str, destination_path: Str) -> dict:
        s, d = _norm_path(source_path), _norm_path(destination_path)
        self.one("SELECT 1 FROM file_system_files WHERE path = ?", (s,), "file")
        if self.q("SELECT 1 FROM file_system_files WHERE path = ?", (d,)):
            raise APIError("Conflict", f"'{d}' already exists.")
        self.x("UPDATE file_system_files SET path = ? WHERE path = ?", (d, s))
        return {"path": d}


USER_APPS: list[type[App]] = [Email, Music, Payments, Expenses, Phone, Notes, Todo, FileSystem]
ALL_APPS: list[type[App]] = [Supervisor, ApiDocs, *USER_APPS]
