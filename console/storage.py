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
                "user_added", "user_reset", "user_disabled",
                "heavy_user_marked", "heavy_user_unmarked", "contact_noted",  # staff's (migration 0022)
                "media_played", "media_downloaded", "media_refused", "greeting_uploaded",  # migration 0023
                "flow_changed", "fee_charged"]  # call-flow changes in the console (migration 0023)


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
    recorded: bool = False  # the call has a recording row (played from /recordings)
    voicemail: bool = False  # a message was left

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
                 "charged_eur, recorded, voicemail")


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


# ---------------------------------------------------------------- call-flow changes (decision 0035)

HISTORY_LIMIT = 200


@dataclass(frozen=True, slots=True)
class FlowChange:
    """A version that changed one of the numbers asked for, with the fees charged to the customer for it."""

    version: str
    applied_at: datetime
    author: str
    role: str
    reason: str
    number: str
    change: str
    diff: str
    fees: tuple[Decimal, ...]
    moved: Literal["", "in", "out"] = ""  # the version gave the number to the customer, or took it away
    owners: str = ""  # for staff: "acme -> bolt" when the version moved the number


async def flow_history(conn: asyncpg.Connection, customer_id: str, *, number: str | None = None,
                       staff: bool = False) -> list[FlowChange]:
    """The changes to the numbers of `customer_id` made while they were theirs (migration 0025), or to
    `number` alone, newest first (at most HISTORY_LIMIT), with the fees charged to `customer_id` for each
    version: a fee another customer paid for the same version is not theirs to see.

    The version that gave a number to the customer, and the one that gave it to another, come with
    `moved` set and, for a customer, without diff and reason: those hold the other customer's content.
    Staff asking for one number get all its changes, whoever it was of; a row whose owner is not known
    (stored before migration 0025 and not backfilled) is staff's only."""
    # One statement per case, each able to use its index (a generic plan of "$1 IS NULL OR ..." could not).
    where = ("c.number = $1::text" if number is not None and staff else
             "c.number = $1::text AND (c.owner_after = $2 OR c.owner_before = $2)" if number is not None else
             "$1::text IS NULL AND (c.owner_after = $2 OR c.owner_before = $2)")
    rows = await conn.fetch(
        f"""SELECT v.version, v.applied_at, v.author, v.role, c.number, c.change,
                  CASE WHEN c.change <> 'changed' OR c.owner_before IS NOT DISTINCT FROM c.owner_after THEN ''
                       WHEN c.owner_after IS NOT DISTINCT FROM $2 THEN 'in'
                       WHEN c.owner_before IS NOT DISTINCT FROM $2 THEN 'out' ELSE '' END AS moved,
                  CASE WHEN c.owner_before IS DISTINCT FROM c.owner_after AND c.change = 'changed'
                       THEN coalesce(c.owner_before, '?') || ' -> ' || coalesce(c.owner_after, '?') ELSE '' END AS owners,
                  CASE WHEN $3 OR c.change <> 'changed' OR c.owner_before IS NOT DISTINCT FROM c.owner_after
                       THEN v.reason ELSE '' END AS reason,
                  CASE WHEN $3 OR c.change <> 'changed' OR c.owner_before IS NOT DISTINCT FROM c.owner_after
                       THEN c.diff ELSE '' END AS diff,
                  coalesce((SELECT array_agg(s.amount_eur ORDER BY s.id) FROM service_charges s
                            WHERE s.config_version_id = v.id AND s.customer_id = $2), '{{}}') AS fees
           FROM config_version_changes c JOIN config_versions v ON v.id = c.version_id
           WHERE {where}
           ORDER BY v.id DESC, c.number
           LIMIT $4""", number, customer_id, staff, HISTORY_LIMIT)
    return [FlowChange(r["version"], r["applied_at"], r["author"], r["role"], r["reason"], r["number"], r["change"],
                       r["diff"], tuple(r["fees"]), r["moved"], r["owners"] if staff else "") for r in rows]


async def ownerless_changes(conn: asyncpg.Connection, number: str) -> int:
    """How many change rows of `number` name no customer (stored before migration 0025, not backfilled)."""
    return int(await conn.fetchval("""SELECT count(*) FROM config_version_changes
                                      WHERE number = $1 AND owner_before IS NULL AND owner_after IS NULL""", number))


async def changes_since(conn: asyncpg.Connection, base_id: int, numbers: list[str],
                        customer_id: str) -> list[tuple[str, str, str, str]]:
    """The change rows of `numbers` ("*": outside `numbers:`, "queue:NAME": a queue) in the versions after
    `base_id`, and those of every queue of `customer_id` (before or after), oldest first: (version, number,
    change, diff). A row of a number or queue that was another customer's before or after it comes without
    its diff (it holds that customer's settings)."""
    rows = await conn.fetch(
        """SELECT v.version, c.number, c.change,
                  CASE WHEN c.number = '*'
                            OR (c.owner_before = $3 OR c.owner_before IS NULL AND c.change = 'added')
                               AND (c.owner_after = $3 OR c.owner_after IS NULL AND c.change = 'removed')
                       THEN c.diff ELSE '' END AS diff
           FROM config_version_changes c JOIN config_versions v ON v.id = c.version_id
           WHERE c.version_id > $1 AND (c.number = ANY($2::text[])
                 OR c.number LIKE 'queue:%' AND $3::text IN (c.owner_before, c.owner_after))
           ORDER BY c.version_id, c.number""", base_id, numbers, customer_id)
    return [(r["version"], r["number"], r["change"], r["diff"]) for r in rows]


# ---------------------------------------------------------------- recordings and voicemails (issue 19)

MediaKind = Literal["recording", "voicemail"]
MEDIA_KINDS: tuple[MediaKind, ...] = ("recording", "voicemail")


@dataclass(frozen=True, slots=True)
class MediaRow:
    """A recording or voicemail of one of the customer's calls; `file` and `sha256` as stored with it."""

    kind: MediaKind
    call_id: str
    did: str
    caller: str | None
    started_at: datetime  # the call's
    duration_seconds: Decimal
    file: str
    sha256: str
    purged_at: datetime | None
    node: str

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.call_id}"

    @property
    def cursor(self) -> Cursor:
        return Cursor(self.started_at, self.key)


_MEDIA = """
SELECT m.kind, c.call_id, c.did, c.caller, c.started_at, m.duration_seconds, m.file, m.sha256, m.purged_at, c.node
FROM cdrs c JOIN (
    SELECT 'recording' AS kind, call_id, duration_seconds, file, sha256, purged_at FROM recordings
    UNION ALL
    SELECT 'voicemail', call_id, duration_seconds, file, sha256, purged_at FROM voicemails) m USING (call_id)
"""


async def media(conn: asyncpg.Connection, customer_id: str, f: CallFilter, *, limit: int) -> list[MediaRow]:
    """The customer's recordings and voicemails of calls matching `f` (number, days), newest call first, by keyset
    over (the call's start, kind:call_id); purged ones too (the page says so)."""
    where = ["c.customer_id = $1", "c.started_at >= $2", "c.started_at < $3", "(c.recorded OR c.voicemail)"]
    args: list[object] = [customer_id, f.start, f.end]
    if f.number is not None:
        args.append(f.number)
        where.append(f"c.did = ${len(args)}")
    if f.after is not None:
        args += [f.after.started_at, f.after.call_id]
        where.append(f"(c.started_at, m.kind || ':' || c.call_id) < (${len(args) - 1}, ${len(args)})")
    args.append(limit)
    rows = await conn.fetch(f"{_MEDIA} WHERE {' AND '.join(where)} "
                            f"ORDER BY c.started_at DESC, m.kind || ':' || c.call_id DESC LIMIT ${len(args)}", *args)
    return [MediaRow(*r) for r in rows]


async def medium(conn: asyncpg.Connection, customer_id: str, kind: MediaKind, call_id: str) -> MediaRow | None:
    """The customer's recording or voicemail of call `call_id`; None when there is none of theirs."""
    row = await conn.fetchrow(f"{_MEDIA} WHERE c.customer_id = $1 AND m.kind = $2 AND c.call_id = $3",
                              customer_id, kind, call_id)
    return MediaRow(*row) if row is not None else None
