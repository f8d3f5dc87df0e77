"""The operator's mailbox: where emails go in embedded mode, when no mail server is set up.

Each message is kept as one .eml file under MAILBOX_DIR for MAILBOX_RETENTION_HOURS and
shown to superusers in the admin (/admin/mailbox/). Sign-in and verification links are
secrets: the log gets one line per message (recipient and subject), never the body.
"""

from __future__ import annotations

import datetime as dt
import email.policy
import logging
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from email import message_from_bytes
from email.message import EmailMessage as ParsedMessage
from pathlib import Path

from django.conf import settings
from django.core.mail.backends.base import BaseEmailBackend
from django.core.mail.message import EmailMessage
from django.utils import timezone

log = logging.getLogger(__name__)

_NAME = re.compile(r"^(\d{8}T\d{6}\d{6}Z)-([0-9a-f]{16})\.eml$")
_STAMP = "%Y%m%dT%H%M%S%fZ"


@dataclass(frozen=True, slots=True)
class MailboxMessage:
    id: str  # the file's stem: sortable by time, unguessable
    sent_at: dt.datetime
    subject: str
    sender: str
    recipients: str
    body: str


def _directory() -> Path:
    return Path(settings.MAILBOX_DIR)


class MailboxBackend(BaseEmailBackend):
    """Django email backend that files messages into the operator's mailbox."""

    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        directory = _directory()
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        mailbox_purge()
        sent = 0
        for message in email_messages:
            if not message.recipients():
                continue
            stamp = timezone.now().astimezone(dt.UTC).strftime(_STAMP)
            path = directory / f"{stamp}-{secrets.token_hex(8)}.eml"
            path.write_bytes(message.message().as_bytes(linesep="\n"))
            path.chmod(0o600)  # the links inside are secrets
            log.info(
                "email to %s (%r) kept in the operator's mailbox: /admin/mailbox/",
                ", ".join(message.recipients()),
                message.subject,
            )
            sent += 1
        return sent


def _parse(path: Path, sent_at: dt.datetime) -> MailboxMessage:
    parsed = message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert isinstance(parsed, ParsedMessage)  # noqa: S101 - policy.default builds these
    part = parsed.get_body(preferencelist=("plain", "html"))
    body = part.get_content() if part is not None else ""
    return MailboxMessage(
        id=path.stem,
        sent_at=sent_at,
        subject=str(parsed.get("Subject", "")),
        sender=str(parsed.get("From", "")),
        recipients=", ".join(
            str(parsed.get(header)) for header in ("To", "Cc") if parsed.get(header)
        ),
        body=str(body),
    )


def _sent_at(path: Path) -> dt.datetime | None:
    match = _NAME.match(path.name)
    if match is None:
        return None
    return dt.datetime.strptime(match.group(1), _STAMP).replace(tzinfo=dt.UTC)


def mailbox_messages() -> list[MailboxMessage]:
    """The messages still kept, newest first (expired ones are purged first)."""
    mailbox_purge()
    directory = _directory()
    if not directory.is_dir():
        return []
    found = []
    for path in directory.glob("*.eml"):
        sent_at = _sent_at(path)
        if sent_at is not None:
            found.append(_parse(path, sent_at))
    return sorted(found, key=lambda m: m.id, reverse=True)


def mailbox_purge(*, now: dt.datetime | None = None) -> int:
    """Delete messages older than MAILBOX_RETENTION_HOURS; returns how many went."""
    directory = _directory()
    if not directory.is_dir():
        return 0
    cutoff = (now or timezone.now()) - dt.timedelta(hours=settings.MAILBOX_RETENTION_HOURS)
    removed = 0
    for path in directory.glob("*.eml"):
        sent_at = _sent_at(path)
        if sent_at is not None and sent_at < cutoff:
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def mailbox_in_use() -> bool:
    """Whether emails go to the operator's mailbox (what the sign-up pages tell people)."""
    return f"{MailboxBackend.__module__}.{MailboxBackend.__name__}" == settings.EMAIL_BACKEND
