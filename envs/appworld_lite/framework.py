"""The engine behind appworld-lite: a SQLite world, typed APIs with pydantic validation, JSON envelopes.

Every API call answers with a JSON *envelope* that echoes the request (secrets removed), so an observation
can be attributed to its call even when it is read out of context (a fold summary, a recall result):

    {"app": "music", "api": "show_playlist_songs", "args": {"playlist_id": 3, "page_index": 1},
     "status": "ok", "response": {...}}

Errors (bad arguments, unknown app/api, expired token, missing record) come back the same way with
``"status": "error"`` and ``"error": {"type": ..., "message": ...}`` - never as an exception.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import sqlite3
import typing
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

__all__ = [
    "APIError",
    "APISpec",
    "App",
    "World",
    "api",
    "PAGE_SIZE",
    "TOKEN_TTL",
    "SECRET_ARGS",
    "money",
    "cents",
]

PAGE_SIZE = 5  # small on purpose: gathering data takes many calls
TOKEN_TTL = 60  # an access token expires after this many API calls (world ticks)
SECRET_ARGS = frozenset({"access_token", "password"})


def money(c: int) -> float:
    """Cents (stored) to dollars (shown)."""
    return round(c / 100.0, 2)


def cents(amount: float) -> int:
    return int(round(float(amount) * 100))


class APIError(Exception):
    """An error that becomes an error observation (never a crash)."""

    def __init__(self, type_: str, message: str):
        super().__init__(message)
        self.type = type_
        self.message = message


@dataclass
class APISpec:
    app: str
    name: str
    description: str
    fn: Callable[..., Any]
    model: type[BaseModel]
    auth: bool
    mutates: bool
    paginated: bool
    returns: str

    def doc(self) -> dict:
        schema = self.model.model_json_schema()
        props = schema.get("properties", {})
        required = set(schema.get("required", []))
        params = []
        for name, p in props.items():
            entry = {
                "name": name,
                "type": _schema_type(p),
                "required": name in required,
                "description": p.get("description", ""),
            }
            if "default" in p:
                entry["default"] = p["default"]
            cons = {k: p[k] for k in ("minimum", "maximum", "exclusiveMinimum", "minLength", "enum") if k in p}
            if cons:
                entry["constraints"] = cons
            params.append(entry)
        return {
            "app_name": self.app,
            "api_name": self.name,
            "description": self.description,
            "requires_access_token": self.auth,
            "mutates_state": self.mutates,
            "paginated": self.paginated,
            "parameters": params,
            "response": self.returns,
            "parameters_schema": schema,
        }


def _schema_type(p: dict) -> str:
    if "type" in p:
        t = p["type"]
        if t == "array" and "items" in p:
            return f"list[{_schema_type(p['items'])}]"
        return t
    if "anyOf" in p:
        return " | ".join(_schema_type(x) for x in p["anyOf"])
    if "enum" in p:
        return "enum"
    return "any"


def api(
    description: str,
    *,
    auth: bool = True,
    mutates: bool = False,
    paginated: bool = False,
    returns: str = "",
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Mark an App method as an API. Its signature (with Annotated[..., Field(...)]) becomes the arg model."""

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        fn.__api__ = {  # type: ignore[attr-defined]
            "description": description,
            "auth": auth,
            "mutates": mutates,
            "paginated": paginated,
            "returns": returns,
        }
        return fn

    return deco


PageIndex = typing.Annotated[int, Field(ge=0, description="0-based page number; each page holds up to 5 items.")]
AccessToken = typing.Annotated[str, Field(description="Access token from this app's `login` API.")]


class App:
    """Base class of an app. Subclasses set name/description/ddl and define @api methods."""

    name: str = ""
    description: str = ""
    ddl: str = ""
    _specs: dict[str, APISpec] | None = None

    def __init__(self, world: "World"):
        self.w = world

    @classmethod
    def specs(cls) -> dict[str, APISpec]:
        if cls.__dict__.get("_specs") is None:
            specs: dict[str, APISpec] = {}
            for attr, fn in cls.__dict__.items():
                meta = getattr(fn, "__api__", None)
                if meta is None:
                    continue
                hints = typing.get_type_hints(fn, include_extras=True)
                fields: dict[str, Any] = {}
                if meta["auth"]:
                    fields["access_token"] = (AccessToken, ...)
                for pname, param in inspect.signature(fn).parameters.items():
                    if pname == "self":
                        continue
                    ann = hints.get(pname, Any)
                    default = ... if param.default is inspect.Parameter.empty else param.default
                    fields[pname] = (ann, default)
                model = create_model(  # type: ignore[call-overload]
                    f"{cls.__name__}_{attr}_Args",
                    __config__=ConfigDict(extra="forbid"),
                    **fields,
                )
                specs[attr] = APISpec(
                    app=cls.name,
                    name=attr,
                    description=meta["description"],
                    fn=fn,
                    model=model,
                    auth=meta["auth"],
                    mutates=meta["mutates"],
                    paginated=meta["paginated"],
                    returns=meta["returns"],
                )
            cls._specs = specs
        return cls._specs  # type: ignore[return-value]

    # helpers -----------------------------------------------------------------------------------------
    def page(self, items: list[Any], page_index: int) -> dict:
        start = page_index * PAGE_SIZE
        end = start + PAGE_SIZE
        return {"items": items[start:end], "page_index": page_index, "has_more": end < len(items)}

    def q(self, sql: str, params: tuple | list = ()) -> list[dict]:
        return self.w.q(sql, params)

    def one(self, sql: str, params: tuple | list = (), what: str = "record") -> dict:
        rows = self.w.q(sql, params)
        if not rows:
            raise APIError("NotFound", f"No {what} found.")
        return rows[0]

    def x(self, sql: str, params: tuple | list = ()) -> int:
        return self.w.x(sql, params)

    def check_login(self, username: str, password: str, expected_username: str) -> dict:
        row = self.w.q("SELECT password FROM supervisor_passwords WHERE account_name = ?", (self.name,))
        if username == expected_username and password in self.w.expired_passwords.get(self.name, ()):
            raise APIError("PasswordExpired", f"This password of the {self.name} account has expired. The current "
                                              f"one is in supervisor.show_account_passwords.")
        if username != expected_username or not row or row[0]["password"] != password:
            raise APIError("AuthenticationFailed", "Invalid username or password.")
        return {"access_token": self.w.issue_token(self.name), "token_type": "Bearer", "expires_in_calls": TOKEN_TTL}


# characters of a generated password (no 0/O, 1/l/I look-alikes): seeding and password rotation use the same
PASSWORD_ALPHABET = "abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"


class World:
    """One task's world: an SQLite database plus a call clock. Deterministic given the seed and the calls.

    Apps in `rotating_passwords` have credentials that expire: when a token of such an app expires, the app's
    password expires with it and the supervisor's account store holds a new one (as with enforced password
    rotation or short-lived credentials), so an agent must look the password up again instead of reusing the one
    it read at the start. The rotation is the world's doing: `snapshot` leaves the password store out, so it is
    never taken for a change the agent made."""

    ENV_MANAGED = frozenset({"supervisor_passwords"})  # changed by the world only (no API writes it)

    def __init__(self, task_key: str, today: datetime, app_classes: list[type[App]], path: str = ":memory:"):
        self.task_key = task_key
        self.today = today
        self.conn = sqlite3.connect(path)
        self.conn.row_factory = sqlite3.Row
        self.tick = 0
        self.completed = False
        self.answer: Any = None
        self._token_counter = 0
        self.rotating_passwords: frozenset[str] = frozenset()
        self.expired_passwords: dict[str, list[str]] = {}  # app -> its passwords that expired (oldest first)
        self._rotated_tokens: set[str] = set()
        self.apps: dict[str, App] = {}
        self.conn.executescript(
            "CREATE TABLE sys_tokens (token TEXT PRIMARY KEY, app TEXT NOT NULL, issued_tick INTEGER NOT NULL);"
        )
        for cls in app_classes:
            if cls.ddl:
                self.conn.executescript(cls.ddl)
            self.apps[cls.name] = cls(self)

    # database ---------------------------------------------------------------------------------------
    def q(self, sql: str, params: tuple | list = ()) -> list[dict]:
        return [dict(r) for r in self.conn.execute(sql, params).fetchall()]

    def x(self, sql: str, params: tuple | list = ()) -> int:
        cur = self.conn.execute(sql, params)
        return int(cur.lastrowid or 0)

    def insert(self, table: str, **values: Any) -> int:
        cols = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        return self.x(f"INSERT INTO {table} ({cols}) VALUES ({marks})", list(values.values()))

    def tables(self) -> list[str]:
        rows = self.q("SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
        return [r["name"] for r in rows]

    def primary_key(self, table: str) -> list[str]:
        info = self.q(f"PRAGMA table_info({table})")
        pk = sorted((r for r in info if r["pk"]), key=lambda r: r["pk"])
        return [r["name"] for r in pk] or [r["name"] for r in info]

    def snapshot(self) -> dict[str, dict[tuple, dict]]:
        """Every user-visible table as {pk tuple: row}; sys_* tables (tokens) are excluded."""
        snap: dict[str, dict[tuple, dict]] = {}
        for t in self.tables():
            if t.startswith("sys_") or t in self.ENV_MANAGED:
                continue
            pk = self.primary_key(t)
            snap[t] = {tuple(r[c] for c in pk): r for r in self.q(f"SELECT * FROM {t}")}
        return snap

    def dump(self) -> str:
        """A canonical text dump of the whole database (determinism checks)."""
        return "\n".join(self.conn.iterdump())

    # time and tokens --------------------------------------------------------------------------------
    def now(self) -> datetime:
        return self.today + timedelta(minutes=self.tick)

    def now_iso(self) -> str:
        return self.now().strftime("%Y-%m-%dT%H:%M:%S")

    def issue_token(self, app: str) -> str:
        self._token_counter += 1
        h = hashlib.sha256(f"{self.task_key}|{app}|{self._token_counter}".encode()).hexdigest()[:12]
        token = f"at-{app}-{h}"
        self.x("INSERT INTO sys_tokens (token, app, issued_tick) VALUES (?, ?, ?)", (token, app, self.tick))
        return token

    def check_token(self, app: str, token: str) -> None:
        rows = self.q("SELECT app, issued_tick FROM sys_tokens WHERE token = ?", (token,))
        if not rows or rows[0]["app"] != app:
            raise APIError("InvalidToken", f"The access token is not valid for app '{app}'. Log in with {app}.login.")
        if self.tick - rows[0]["issued_tick"] > TOKEN_TTL:
            if app in self.rotating_passwords:
                self._rotate_password(app, token)
                raise APIError("TokenExpired", f"The access token for '{app}' has expired, and so has the password "
                                               f"of the {app} account: look up the new one with "
                                               f"supervisor.show_account_passwords, then log in again with "
                                               f"{app}.login.")
            raise APIError("TokenExpired", f"The access token for '{app}' has expired. Log in again with {app}.login.")

    def _rotate_password(self, app: str, token: str) -> None:
        """The app's password expires with its token (once per token); the account store gets a new one."""
        if token in self._rotated_tokens:
            return
        self._rotated_tokens.add(token)
        old = self.q("SELECT password FROM supervisor_passwords WHERE account_name = ?", (app,))
        if not old:
            return
        expired = self.expired_passwords.setdefault(app, [])
        expired.append(old[0]["password"])
        digest = hashlib.sha256(f"{self.task_key}|password|{app}|{len(expired)}".encode()).digest()
        new = "".join(PASSWORD_ALPHABET[b % len(PASSWORD_ALPHABET)] for b in digest[:10])
        self.x("UPDATE supervisor_passwords SET password = ? WHERE account_name = ?", (new, app))

    # calls ------------------------------------------------------------------------------------------
    def call(self, app: str, api_name: str, arguments: dict | None = None, *, internal: bool = False) -> dict:
        """Run one API call and return its envelope. ``internal`` skips the token check (evaluator oracle)."""
        arguments = dict(arguments or {})
        echo = {k: v for k, v in sorted(arguments.items()) if k not in SECRET_ARGS}
        env: dict[str, Any] = {"app": app, "api": api_name, "args": echo}
        try:
            if app not in self.apps:
                raise APIError("UnknownApp", f"No app named '{app}'. Known apps: {', '.join(sorted(self.apps))}.")
            specs = type(self.apps[app]).specs()
            if api_name not in specs:
                raise APIError(
                    "UnknownAPI",
                    f"App '{app}' has no API '{api_name}'. Use api_docs.show_api_descriptions(app_name='{app}').",
                )
            spec = specs[api_name]
            if internal and spec.auth and "access_token" not in arguments:
                arguments["access_token"] = "internal"
            try:
                parsed = spec.model.model_validate(arguments)
            except ValidationError as e:
                errs = [
                    {"loc": ".".join(str(p) for p in err["loc"]), "msg": err["msg"]} for err in e.errors()
                ]
                raise APIError("ValidationError", "; ".join(f"{x['loc']}: {x['msg']}" for x in errs)) from None
            self.tick += 1
            kwargs = {k: getattr(parsed, k) for k in type(parsed).model_fields}
            token = kwargs.pop("access_token", None)
            if spec.auth and not internal:
                self.check_token(app, token or "")
            result = spec.fn(self.apps[app], **kwargs)
            env["status"] = "ok"
            env["response"] = result
        except APIError as e:
            env["status"] = "error"
            env["error"] = {"type": e.type, "message": e.message}
        return env


def dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(", ", ": "))
