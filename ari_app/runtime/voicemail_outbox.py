"""The voicemail outbox: mails every message in `voicemails` not sent yet, retrying with back-off (decision 0027).

Runs in `fairline run` beside the calls. Every POLL_S it claims the messages due (a lease in the row,
so fairlines sharing one database never mail one message at once), mails each to its customer's
addresses as the configuration in force says (an address fixed later is used on the next attempt), and
marks it sent, or retrying / failed with the time of its next attempt (ari_app/core/voicemail.py). The
database is the only state: a restarted fairline, or another node, goes on where this one stopped.
Nothing here ever deletes or forgets a message.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta

import asyncpg
import structlog

from ari_app import mail
from ari_app.settings import SmtpSettings
from ari_app.core import voicemail
from ari_app.core.model import Config
from plumbing.clock import utc_now
from rating.storage import voicemails
from rating.storage.recordings import verify

POLL_S = 2.0  # how soon a new message, or one due again, is mailed
LEASE_S = 300.0  # a claimed message is left to its mailer this long: several SMTP timeouts
BATCH = 20

Log = structlog.typing.FilteringBoundLogger


class Outbox:
    def __init__(self, pool: asyncpg.Pool, smtp: SmtpSettings, config: Callable[[], Config], log: Log) -> None:
        self.pool = pool
        self.smtp = smtp
        self.config = config  # the configuration in force: whose box gets which message
        self.log = log
        self.sent = 0

    async def run(self, stop: asyncio.Event) -> None:
        """Mail what is due until `stop` is set; a database or SMTP outage is waited out, never fatal."""
        down = False
        while not stop.is_set():
            try:
                async with self.pool.acquire(timeout=5) as conn:
                    due = await voicemails.claim_due(conn, now=utc_now(), lease_s=LEASE_S, limit=BATCH)
                if down:
                    self.log.info("voicemail.outbox_db_back")
                    down = False
                for message in due:
                    await self._mail(message)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                if not down:  # the messages wait in the database (or the CDR spool) meanwhile
                    self.log.warning("voicemail.outbox_db_unreachable", error=str(exc) or type(exc).__name__)
                    down = True
            try:
                await asyncio.wait_for(stop.wait(), timeout=POLL_S)
            except TimeoutError:
                pass

    async def _mail(self, message: voicemails.Voicemail) -> None:
        log = self.log.bind(call_id=message.call_id)
        customer = self.config().customers.get(message.customer_id or "")
        box = customer.voicemail if customer is not None else None
        to = box.email if box is not None else ()
        try:
            if box is None:
                raise mail.MailRefused(f"customer {message.customer_id} has no voicemail box in the configuration "
                                       "in force: nowhere to mail it")
            problem = await asyncio.to_thread(verify, message.file, message.sha256)
            if problem is not None:
                raise mail.MailRefused(f"the message's file {message.file}: {problem}")
            wav = await asyncio.to_thread(_read, message.file)
            email = mail.voicemail_message(
                sender=self.smtp.sender, to=to, call_id=message.call_id, did=message.did, caller=message.caller,
                started=message.started_at.isoformat(timespec="seconds"), seconds=str(message.duration_seconds),
                wav=wav)
            sent = await asyncio.to_thread(mail.send, self.smtp, email, to)
        except mail.MailError as exc:
            attempts = message.email_attempts + 1
            status = voicemail.after_failure(isinstance(exc, mail.MailRefused))
            retry_in = voicemail.retry_after(attempts)
            log.warning("voicemail.not_mailed", status=status.value, attempts=attempts, error=str(exc),
                        retry_in_s=retry_in, smtp=f"{self.smtp.host}:{self.smtp.port}")
            await voicemails.mark_failed(self.pool, message.call_id, status=status.value, error=str(exc), to=to,
                                         next_attempt_at=utc_now() + timedelta(seconds=retry_in))
            return
        note = f"refused: {sent.refused}" if sent.refused else None
        await voicemails.mark_sent(self.pool, message.call_id, to=to, now=utc_now(), note=note)
        self.sent += 1
        log.info("voicemail.mailed", to=list(to), attempts=message.email_attempts + 1, refused=sent.refused or None)


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()
