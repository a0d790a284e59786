"""Sending through an SMTP server: the council's relay, or a mail provider's submission port.

>>> with SmtpTransport("smtp.council.example", 587, "starttls", username="ehcp", password="...") as smtp:
...     message_id = smtp.send(email)

One connection serves many sends; it is opened on the first send, checked with NOOP before each
later one, and dropped after any error so that the next send starts afresh. A transport is used
by one thread at a time.
"""

from __future__ import annotations

import re
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formataddr, formatdate, parseaddr
from types import TracebackType
from typing import Literal, NoReturn

from notifications.message import Email, PermanentFailure, TemporaryFailure

TlsMode = Literal["none", "starttls", "tls"]
TLS_MODES: tuple[TlsMode, ...] = ("none", "starttls", "tls")

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def safe_key(key: str) -> str:
    """The outbox key with anything outside [A-Za-z0-9._-] made a '.': fit for a Message-ID or a file name."""
    return _UNSAFE.sub(".", key)


def message_id(message: Email) -> str:
    """`<KEY@DOMAIN>`, the same for every send of one outbox row, so that mail systems can drop a repeat."""
    domain = parseaddr(message.sender)[1].rpartition("@")[2]
    return f"<{safe_key(message.key)}@{safe_key(domain) or 'localhost'}>"


def build_email(message: Email) -> EmailMessage:
    """The MIME message for `message`: text, and HTML as its alternative when there is some."""
    email = EmailMessage()
    email["From"] = message.sender
    email["To"] = formataddr((message.to_name, message.to))
    email["Subject"] = message.subject
    email["Date"] = formatdate(localtime=False)
    email["Message-ID"] = message_id(message)
    if message.reply_to:
        email["Reply-To"] = message.reply_to
    email["X-EHCP-Key"] = message.key
    email.set_content(message.text)
    if message.html is not None:
        email.add_alternative(message.html, subtype="html")
    return email


def build_email_or_fail(message: Email) -> EmailMessage:
    """:func:`build_email`, with a header the email library refuses turned into a :class:`PermanentFailure`."""
    try:
        return build_email(message)
    except (ValueError, TypeError, IndexError):
        # The library's text can quote the header's value (an address, a subject): leave it out.
        raise PermanentFailure(
            f"message {message.key}: cannot be built as an email (a header holds a line break or an invalid address)"
        ) from None


def redact(text: str, *secrets: str | None) -> str:
    """`text` with each of `secrets` (the recipient's address) replaced by a placeholder, ignoring case."""
    for secret in secrets:
        if secret:
            text = re.sub(re.escape(secret), "<recipient>", text, flags=re.IGNORECASE)
    return text


class SmtpTransport:
    """Hands messages to an SMTP server; returns each message's Message-ID once the server said 250."""

    name = "smtp"

    def __init__(
        self,
        host: str,
        port: int,
        tls: str,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 30,
        ca_file: str | None = None,
        helo: str | None = None,
    ) -> None:
        """`tls`: "none", "starttls" (upgrade a plain connection, usually port 587) or "tls" (port 465).

        `ca_file`: a CA bundle to trust instead of the system's, e.g. for a relay with the council's own CA.
        `helo`: the name to give in EHLO, when the server wants something other than this host's name.
        """
        if tls not in TLS_MODES:
            raise ValueError(f"tls: {tls!r} is not one of {', '.join(TLS_MODES)}")
        if username is not None and password is None:
            raise ValueError("password: required when a username is given")
        if username is not None and tls == "none":
            # A login over plain text gives the relay's password to anyone on the path.
            raise ValueError("tls: a login (username) needs starttls or tls; it is never sent over plain text")
        self.host = host
        self.port = port
        self.tls = tls
        self.username = username
        self.password = password
        self.timeout = timeout
        self.ca_file = ca_file
        self.helo = helo
        self._smtp: smtplib.SMTP | None = None

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    def send(self, message: Email) -> str:
        email = build_email_or_fail(message)
        try:
            smtp = self._connection()
            smtp.send_message(email, from_addr=parseaddr(message.sender)[1], to_addrs=[message.to])
        except Exception as error:
            self._drop()
            self._fail(error, message)
        return str(email["Message-ID"])

    def close(self) -> None:
        """Say QUIT and close the connection, if one is open."""
        smtp, self._smtp = self._smtp, None
        if smtp is None:
            return
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            smtp.close()

    def __enter__(self) -> SmtpTransport:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _connection(self) -> smtplib.SMTP:
        if self._smtp is not None:
            # Servers drop idle connections (often after a few minutes); a dead one is replaced rather
            # than failing the message.
            try:
                if self._smtp.noop()[0] == 250:
                    return self._smtp
            except (smtplib.SMTPException, OSError):
                pass
            self._drop()
        self._smtp = self._connect()
        return self._smtp

    def _connect(self) -> smtplib.SMTP:
        context = ssl.create_default_context(cafile=self.ca_file) if self.tls != "none" else None
        smtp: smtplib.SMTP
        if self.tls == "tls":
            smtp = smtplib.SMTP_SSL(
                self.host, self.port, local_hostname=self.helo, timeout=self.timeout, context=context
            )
        else:
            smtp = smtplib.SMTP(self.host, self.port, local_hostname=self.helo, timeout=self.timeout)
        try:
            smtp.ehlo()
            if self.tls == "starttls":
                smtp.starttls(context=context)
                smtp.ehlo()
            if self.username is not None and self.password is not None:
                smtp.login(self.username, self.password)
        except BaseException:
            smtp.close()
            raise
        return smtp

    def _drop(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            smtp.close()

    def _fail(self, error: Exception, message: Email) -> NoReturn:
        """Raise the failure for `error`: temporary or permanent, saying what happened but not to whom."""
        where = self.where
        about = f"message {message.key} via {where}"
        # `from None`: the original exceptions carry the recipient's address (SMTPRecipientsRefused holds
        # it in its arguments), and a logged traceback would print it.
        if isinstance(error, smtplib.SMTPAuthenticationError):
            text = _server_text(error.smtp_error)
            raise PermanentFailure(f"{about}: login refused ({error.smtp_code} {text})") from None
        if isinstance(error, TimeoutError) or isinstance(error.__context__, TimeoutError):
            # smtplib reports a reply that never came as SMTPServerDisconnected, with the timeout as context.
            raise TemporaryFailure(f"{about}: timed out after {self.timeout:g}s") from None
        if isinstance(error, smtplib.SMTPServerDisconnected):
            raise TemporaryFailure(f"{about}: the server closed the connection ({error})") from None
        if isinstance(error, smtplib.SMTPConnectError):
            text = redact(_server_text(error.smtp_error), message.to)
            raise TemporaryFailure(f"{about}: the server refused the session ({error.smtp_code} {text})") from None
        if isinstance(error, smtplib.SMTPRecipientsRefused):
            code, reply = next(iter(error.recipients.values()), (-1, b""))
            text = redact(_server_text(reply), message.to)
            _raise_for_code(code, f"{about}: recipient refused ({code} {text})")
        if isinstance(error, smtplib.SMTPResponseException):
            text = redact(_server_text(error.smtp_error), message.to)
            stage = {
                smtplib.SMTPSenderRefused: "sender refused",
                smtplib.SMTPDataError: "message refused",
                smtplib.SMTPHeloError: "EHLO refused",
            }.get(type(error), "refused")
            _raise_for_code(error.smtp_code, f"{about}: {stage} ({error.smtp_code} {text})")
        if isinstance(error, smtplib.SMTPNotSupportedError):
            # STARTTLS or AUTH asked of a server that does not offer it: a setting to fix, not a wait.
            raise PermanentFailure(f"{about}: {error}") from None
        if isinstance(error, ssl.SSLCertVerificationError):
            raise TemporaryFailure(
                f"{about}: the server's certificate is not trusted ({error.verify_message}); see ca_file"
            ) from None
        if isinstance(error, ConnectionRefusedError):
            raise TemporaryFailure(f"{about}: connection refused") from None
        if isinstance(error, (OSError, smtplib.SMTPException)):
            raise TemporaryFailure(f"{about}: {type(error).__name__}: {redact(str(error), message.to)}") from None
        raise error


def _server_text(reply: bytes | str) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
    return " ".join(text.split())[:300]


def _raise_for_code(code: int, text: str) -> NoReturn:
    """5xx is the server's final word; 4xx (and anything odd) may pass."""
    if 500 <= code < 600:
        raise PermanentFailure(text) from None
    raise TemporaryFailure(text) from None
