"""E-mail of voicemail messages over SMTP (the stdlib's smtplib, run off the event loop by the outbox).

Errors are split by what fairline does next: `MailRefused` (the server answered 5xx: the message, an
address or the login is refused; the operator must act) and `MailUnavailable` (no server, a dropped
connection, a timeout, 4xx: try again later). Both are retried (decision 0027). The password is
never logged, nor put in an error's text.
"""

from __future__ import annotations

import dataclasses
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from ari_app.errors import FairlineError
from ari_app.settings import SmtpSettings
from plumbing.clock import utc_now

TIMEOUT_S = 30.0  # per SMTP command: a server that hangs is a server that is down


class MailError(FairlineError):
    """A message was not handed to the SMTP server."""


class MailRefused(MailError):
    """The SMTP server refused (5xx)."""


class MailUnavailable(MailError):
    """The SMTP server could not be reached, went away, or asked to try later (4xx)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Sent:
    refused: dict[str, str]  # recipients the server refused while taking the message for the others


def voicemail_message(*, sender: str, to: tuple[str, ...], call_id: str, did: str, caller: str | None,
                      started: str, seconds: str, wav: bytes) -> EmailMessage:
    """The e-mail of one message: who called which number when, for how long, the WAV attached.

    The Message-ID is the call's, so a message mailed twice (a mailer that died after the server took it)
    shows as one in most mail programs.
    """
    message = EmailMessage()
    message["From"] = sender
    message["To"] = ", ".join(to)
    message["Subject"] = f"Voicemail for {did} from {caller or 'a withheld number'} ({seconds} s)"
    message["Message-ID"] = make_msgid(idstring=f"voicemail.{call_id}", domain="fairline")
    message["Date"] = format_datetime(utc_now())
    message.set_content(f"{caller or 'A caller who withheld their number'} left a message for {did}.\n\n"
                        f"Left at: {started}\nLength: {seconds} s\nCall: {call_id}\n\n"
                        "The message is attached as a WAV file.\n")
    message.add_attachment(wav, maintype="audio", subtype="wav", filename=f"voicemail-{call_id}.wav")
    return message


def send(settings: SmtpSettings, message: EmailMessage, to: tuple[str, ...]) -> Sent:
    """Hand `message` to the SMTP server for `to` (blocking: run it in a thread)."""
    try:
        with smtplib.SMTP(settings.host, settings.port, timeout=TIMEOUT_S) as smtp:
            if settings.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if settings.user is not None:
                smtp.login(settings.user, settings.password or "")
            refused = smtp.send_message(message, from_addr=settings.sender, to_addrs=list(to))
    except smtplib.SMTPRecipientsRefused as exc:
        codes = {address: f"{code} {_text(text)}" for address, (code, text) in exc.recipients.items()}
        permanent = all(code >= 500 for code, _ in exc.recipients.values())
        raise (MailRefused if permanent else MailUnavailable)(f"every recipient refused: {codes}") from None
    except smtplib.SMTPResponseException as exc:
        kind = MailRefused if exc.smtp_code >= 500 else MailUnavailable
        raise kind(f"{type(exc).__name__}: {exc.smtp_code} {_text(exc.smtp_error)}") from None
    except smtplib.SMTPNotSupportedError as exc:  # e.g. STARTTLS asked, not offered
        raise MailRefused(f"SMTPNotSupportedError: {exc}") from None
    except (smtplib.SMTPException, OSError, ssl.SSLError) as exc:
        raise MailUnavailable(f"{type(exc).__name__}: {exc or 'no answer'}") from None
    return Sent({address: f"{code} {_text(text)}" for address, (code, text) in refused.items()})


def _text(raw: bytes | str) -> str:
    return (raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw).replace("\n", " ")

