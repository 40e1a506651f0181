"""The console's SQL: accounts, sessions, the audit, and the customer's calls. DDL is in
rating/storage/migrations/0021_console.sql; bound parameters only."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Literal

import asyncpg

from console.core.call_filter import CallFilter, Cursor
from console.core.fair_use_chart import Standing
from rating.storage.database import StorageError

Role = Literal["customer", "staff"]
Stage = Literal["totp", "enrol", "full"]
Event = Literal["login", "login_failed", "lockout", "login_refused", "logout", "password_changed", "totp_enrolled",
                "user_added", "user_reset", "user_disabled"]


class AccountExists(StorageError):
    """`fairline users add` for an e-mail address that has an account already."""


@dataclass(frozen=True, slots=True)
class Account:
    user_id: int
    email: str
    name: str
    role: Role
    customer_id: str | None
    password_hash: str
    password_changed_at: datetime
    totp_secret: str | None
    totp_last_step: int | None
    disabled: bool


@dataclass(frozen=True, slots=True)
class Session:
    token_sha256: str
    account: Account
    stage: Stage
    csrf_token: str
    pending_totp: str | None
    created_at: datetime
    last_seen_at: datetime


@dataclass(frozen=True, slots=True)
class CallRow:
    call_id: str
    did: str
    caller: str | None
    started_at: datetime
    answered_at: datetime | None
    ended_at: datetime
    disposition: str
    billable_seconds: int
    charged_eur: Decimal

    @property
    def cursor(self) -> Cursor:
        return Cursor(self.started_at, self.call_id)


_ACCOUNT = ("u.user_id, u.email, u.name, u.role, u.customer_id, u.password_hash, u.password_changed_at, "
            "u.totp_secret, u.totp_last_step, u.disabled_at IS NOT NULL AS disabled")


def _account(r: asyncpg.Record) -> Account:
    return Account(r["user_id"], r["email"], r["name"], r["role"], r["customer_id"], r["password_hash"],
                   r["password_changed_at"], r["totp_secret"], r["totp_last_step"], r["disabled"])


# ---------------------------------------------------------------- accounts

async def add_account(conn: asyncpg.Connection, *, email: str, name: str, role: Role, customer_id: str | None,
                      password_hash: str, now: datetime) -> Account:
    try:
        row = await conn.fetchrow(
            f"""INSERT INTO console_users AS u (email, name, role, customer_id, password_hash, password_changed_at)
                VALUES ($1, $2, $3, $4, $5, $6) RETURNING {_ACCOUNT}""",
            email, name, role, customer_id, password_hash, now)
    except asyncpg.UniqueViolationError:
        raise AccountExists(f"{email} has an account already (fairline users reset {email} gives it a new password)") \
            from None
    assert row is not None
    return _account(row)


async def account(conn: asyncpg.Connection, email: str) -> Account | None:
    row = await conn.fetchrow(f"SELECT {_ACCOUNT} FROM console_users u WHERE u.email = $1", email)
    return _account(row) if row else None


async def accounts(conn: asyncpg.Connection) -> list[Account]:
    return [_account(r) for r in await conn.fetch(f"SELECT {_ACCOUNT} FROM console_users u ORDER BY u.email")]


async def set_password(conn: asyncpg.Connection, user_id: int, password_hash: str, now: datetime, *,
                       clear_totp: bool = False, end_sessions: bool = True) -> None:
    """A new password (and, when asked, no TOTP: it is enrolled again at the next sign-in); the account's
    sessions end unless the change is a re-hash at sign-in."""
    async with conn.transaction():
        await conn.execute(
            """UPDATE console_users SET password_hash = $2, password_changed_at = $3,
                   totp_secret = CASE WHEN $4 THEN NULL ELSE totp_secret END,
                   totp_last_step = CASE WHEN $4 THEN NULL ELSE totp_last_step END
               WHERE user_id = $1""", user_id, password_hash, now, clear_totp)
        if end_sessions:
            await conn.execute("DELETE FROM console_sessions WHERE user_id = $1", user_id)


async def rehash(conn: asyncpg.Connection, user_id: int, password_hash: str) -> None:
    """The same password under argon2's current parameters; its age does not change."""
    await conn.execute("UPDATE console_users SET password_hash = $2 WHERE user_id = $1", user_id, password_hash)


async def disable(conn: asyncpg.Connection, user_id: int, now: datetime) -> None:
    async with conn.transaction():
        await conn.execute("UPDATE console_users SET disabled_at = $2 WHERE user_id = $1", user_id, now)
        await conn.execute("DELETE FROM console_sessions WHERE user_id = $1", user_id)


async def enrol_totp(conn: asyncpg.Connection, user_id: int, secret: str, step: int) -> None:
    await conn.execute("UPDATE console_users SET totp_secret = $2, totp_last_step = $3 WHERE user_id = $1",
                       user_id, secret, step)


async def use_totp_step(conn: asyncpg.Connection, user_id: int, step: int) -> bool:
    """Record `step` as used; False when it (or a later one) was used already, by a request racing this one."""
    done = await conn.fetchval(
        """UPDATE console_users SET totp_last_step = $2
           WHERE user_id = $1 AND (totp_last_step IS NULL OR totp_last_step < $2) RETURNING user_id""",
        user_id, step)
    return done is not None


# ---------------------------------------------------------------- sessions

async def create_session(conn: asyncpg.Connection, *, token_sha256: str, user_id: int, stage: Stage, csrf_token: str,
                         address: str, now: datetime, pending_totp: str | None = None) -> None:
    await conn.execute(
        """INSERT INTO console_sessions (token_sha256, user_id, stage, csrf_token, pending_totp, address,
                                         created_at, last_seen_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $7)""",
        token_sha256, user_id, stage, csrf_token, pending_totp, address, now)


async def session(conn: asyncpg.Connection, token_sha256: str) -> Session | None:
    row = await conn.fetchrow(
        f"""SELECT s.token_sha256, s.stage, s.csrf_token, s.pending_totp, s.created_at, s.last_seen_at, {_ACCOUNT}
            FROM console_sessions s JOIN console_users u USING (user_id) WHERE s.token_sha256 = $1""",
        token_sha256)
    if row is None:
        return None
    return Session(row["token_sha256"], _account(row), row["stage"], row["csrf_token"], row["pending_totp"],
                   row["created_at"], row["last_seen_at"])


async def touch(conn: asyncpg.Connection, token_sha256: str, now: datetime) -> None:
    await conn.execute("UPDATE console_sessions SET last_seen_at = $2 WHERE token_sha256 = $1", token_sha256, now)


async def set_pending_totp(conn: asyncpg.Connection, token_sha256: str, secret: str) -> None:
    await conn.execute("UPDATE console_sessions SET pending_totp = $2 WHERE token_sha256 = $1", token_sha256, secret)


async def end_session(conn: asyncpg.Connection, token_sha256: str) -> None:
    await conn.execute("DELETE FROM console_sessions WHERE token_sha256 = $1", token_sha256)


async def purge_sessions(conn: asyncpg.Connection, older_than: datetime) -> int:
    """Forget sessions idle since before `older_than` (they are refused anyway; this keeps the table small)."""
    done = await conn.execute("DELETE FROM console_sessions WHERE last_seen_at < $1", older_than)
    return int(done.split()[-1])


# ---------------------------------------------------------------- audit and throttling

async def audit(conn: asyncpg.Connection, event: Event, *, at: datetime, email: str, user_id: int | None = None,
                address: str = "", detail: str = "") -> None:
    """One event, at the console's clock (throttling compares it with that clock)."""
    await conn.execute(
        "INSERT INTO console_audit (at, event, email, user_id, address, detail) VALUES ($1, $2, $3, $4, $5, $6)",
        at, event, email, user_id, address, detail)


async def failures(conn: asyncpg.Connection, *, email: str, address: str,
                   since: datetime) -> tuple[list[datetime], list[datetime]]:
    """Failed logins since `since`: of this e-mail (only after its last sign-in or reset), and from this address."""
    by_account = await conn.fetch(
        """SELECT at FROM console_audit a
           WHERE email = $1 AND event = 'login_failed' AND at >= $2
             AND at > coalesce((SELECT max(at) FROM console_audit
                                WHERE email = $1 AND event IN ('login', 'user_reset') AND at >= $2), '-infinity')""",
        email, since)
    by_address = await conn.fetch(
        "SELECT at FROM console_audit WHERE address = $1 AND event = 'login_failed' AND at >= $2", address, since)
    return [r["at"] for r in by_account], [r["at"] for r in by_address]


@dataclass(frozen=True, slots=True)
class AuditRow:
    at: datetime
    event: str
    email: str
    address: str
    detail: str


async def audit_trail(conn: asyncpg.Connection, *, limit: int = 100) -> list[AuditRow]:
    rows = await conn.fetch("SELECT at, event, email, address, detail FROM console_audit ORDER BY id DESC LIMIT $1",
                            limit)
    return [AuditRow(r["at"], r["event"], r["email"], r["address"], r["detail"]) for r in rows]


# ---------------------------------------------------------------- the customer's data

async def newest_config_id(conn: asyncpg.Connection) -> int | None:
    value = await conn.fetchval("SELECT max(id) FROM config_versions")
    return int(value) if value is not None else None


async def config_text(conn: asyncpg.Connection, version_id: int) -> str:
    text = await conn.fetchval("SELECT content FROM config_versions WHERE id = $1", version_id)
    return str(text)


_CALL_COLUMNS = ("call_id, did, caller, started_at, answered_at, ended_at, disposition, billable_seconds, "
                 "charged_eur")


async def calls(conn: asyncpg.Connection, customer_id: str, f: CallFilter, *, limit: int,
                after: Cursor | None = None) -> list[CallRow]:
    """The customer's calls matching `f`, newest first, at most `limit`, after the cursor when given.

    Keyset paging over the index (customer_id, started_at, call_id): no OFFSET, no count."""
    where, args = _calls_where(customer_id, f, after if after is not None else f.after)
    args.append(limit)
    rows = await conn.fetch(
        f"SELECT {_CALL_COLUMNS} FROM cdrs WHERE {where} "
        f"ORDER BY started_at DESC, call_id DESC LIMIT ${len(args)}", *args)
    return [CallRow(*r) for r in rows]


def _calls_where(customer_id: str, f: CallFilter, cursor: Cursor | None) -> tuple[str, list[object]]:
    """The conditions of `f` (and after `cursor`) and their arguments, for the index of each filter
    (migrations 0021, 0024)."""
    # Only the conditions in use are in the statement: a generic plan of "$4 IS NULL OR did = $4"
    # could not use an index for either case.
    where = ["customer_id = $1", "started_at >= $2", "started_at < $3"]
    args: list[object] = [customer_id, f.start, f.end]
    if f.number is not None:
        args.append(f.number)
        where.append(f"did = ${len(args)}")
    if f.outcome is not None:
        args.append(f.outcome)
        where.append(f"disposition = ${len(args)}")
    if cursor is not None:
        args += [cursor.started_at, cursor.call_id]
        where.append(f"(started_at, call_id) < (${len(args) - 1}, ${len(args)})")
    return " AND ".join(where), args


# Local times to the second with their offset ("2026-11-16 00:30:00+01"), as PostgreSQL writes a
# timestamptz in the session's TimeZone with DateStyle ISO: cheaper than to_char, which took twice as long.
_CSV_COLUMNS = ("call_id, did AS number, coalesce(caller, '') AS caller, "
                "date_trunc('second', started_at) AS started_at, date_trunc('second', answered_at) AS answered_at, "
                "date_trunc('second', ended_at) AS ended_at, disposition AS outcome, billable_seconds, charged_eur")


async def calls_csv(conn: asyncpg.Connection, customer_id: str, f: CallFilter,
                    output: Callable[[bytes], Awaitable[object]]) -> None:
    """Every call of `f` as CSV with a header, newest first, times on the clock of `f.zone`: formatted
    by PostgreSQL and sent as it goes (COPY), handed to `output` a chunk at a time."""
    where, args = _calls_where(customer_id, f, f.after)
    async with conn.transaction(readonly=True):
        # This transaction only: the connection goes back to the pool as it came. Without bitmap scans the
        # calls come in the index's order and the first bytes leave at once; a bitmap scan (the planner's
        # choice for a few thousand calls) sorts them all first.
        await conn.execute("SELECT set_config('TimeZone', $1, true), set_config('DateStyle', 'ISO', true), "
                           "set_config('enable_bitmapscan', 'off', true)", f.zone.key)
        await conn.copy_from_query(
            f"SELECT {_CSV_COLUMNS} FROM cdrs WHERE {where} ORDER BY started_at DESC, call_id DESC", *args,
            output=output, format="csv", header=True)


async def fair_use(conn: asyncpg.Connection, customer_id: str, months: int) -> list[Standing]:
    """The customer's last `months` months as `fairline fair-use report` stored them, oldest first."""
    rows = await conn.fetch(
        "SELECT month, eligible_calls, platform_average, allowance, status, computed_at FROM fair_use_results "
        "WHERE customer_id = $1 ORDER BY month DESC LIMIT $2", customer_id, months)
    return [Standing(r["month"], r["eligible_calls"], r["platform_average"], r["allowance"], r["status"],
                     r["computed_at"]) for r in reversed(rows)]
