"""Outgoing e-mail through the configured SMTP server."""

from __future__ import annotations

import asyncio
import smtplib
from email.message import EmailMessage

import structlog

from palaver.config import Settings

log = structlog.get_logger(__name__)


class MailUnavailable(Exception):
    """No SMTP server is configured, or it refused the message."""


class Mailer:
    """Sends plain-text mail; the blocking smtplib call runs in a worker thread."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    @property
    def configured(self) -> bool:
        return bool(self._settings.smtp_host)

    async def send(self, to: str, subject: str, body: str) -> None:
        """Send one message; raise :class:`MailUnavailable` on any SMTP failure."""
        if not self.configured:
            raise MailUnavailable("no SMTP server is configured (smtp_host)")
        message = EmailMessage()
        message["From"] = self._settings.smtp_from
        message["To"] = to
        message["Subject"] = subject
        message.set_content(body)
        try:
            await asyncio.to_thread(self._send_sync, message)
        except (OSError, smtplib.SMTPException) as exc:
            log.warning("mail.failed", error=str(exc))
            raise MailUnavailable(str(exc)) from exc

    def _send_sync(self, message: EmailMessage) -> None:
        s = self._settings
        with smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=10) as smtp:
            if s.smtp_starttls:
                smtp.starttls()
            if s.smtp_username:
                smtp.login(s.smtp_username, s.smtp_password)
            smtp.send_message(message)
