"""Real servers on loopback for the tests: aiosmtpd for SMTP, and a small HTTP server speaking
GOV.UK Notify's API (the one remote service that cannot run here, faked at its HTTP boundary)."""

from __future__ import annotations

import asyncio
import email
import glob
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import default as default_policy
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import jwt
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, LoginPassword, Session


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


# --- PostgreSQL ------------------------------------------------------------------------------------


def postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def create_database(server: str, name: str) -> str:
    """A new, empty database on the PostgreSQL server at ``server`` (a URL without a database name)."""
    from sqlalchemy import create_engine, text

    admin = create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    admin.dispose()
    return f"{server}/{name}"


class PostgresCluster:
    """A throw-away PostgreSQL cluster on loopback (Debian's binaries; initdb refuses root, so it runs
    as the postgres user then), which can be stopped and started again on the same port."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.base = Path(tempfile.mkdtemp(prefix="ehcp-pg-"))
        os.chmod(self.base, 0o777)
        self.data = self.base / "data"
        self.port = free_port()
        self.as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run(
            self.as_postgres + [str(bindir / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust",
                                "--no-sync"],
            check=True, capture_output=True,
        )  # fmt: skip

    @property
    def url(self) -> str:
        """The server's address without a database name."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}"

    def start(self) -> None:
        options = f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=off"
        subprocess.run(
            self.as_postgres + [str(self.bindir / "pg_ctl"), "-D", str(self.data), "-o", options, "-w", "-l",
                                str(self.base / "log"), "start"],
            check=True, capture_output=True,
        )  # fmt: skip

    def stop(self) -> None:
        subprocess.run(
            self.as_postgres + [str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"],
            capture_output=True,
        )

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)


# --- SMTP ------------------------------------------------------------------------------------------


@dataclass
class Received:
    peer: Any  # the client's (host, port): one per connection
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    login: bytes | None


class Recorder:
    """An aiosmtpd handler that keeps what it accepts, or answers with a set reply."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.rcpt_reply: str | None = None  # "{address}" is replaced by the recipient, as Postfix quotes it
        self.refuse: dict[str, str] = {}  # a reply for one address only
        self.data_reply: str | None = None
        self.data_delay = 0.0  # seconds to wait before answering DATA

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if self.rcpt_reply:
            return self.rcpt_reply.replace("{address}", address)
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        await asyncio.sleep(self.data_delay)
        if self.data_reply:
            return self.data_reply
        assert isinstance(envelope.content, bytes)
        message = email.message_from_bytes(envelope.content, policy=default_policy)
        assert isinstance(message, EmailMessage)
        login = session.auth_data.login if isinstance(session.auth_data, LoginPassword) else None
        self.received.append(Received(session.peer, str(envelope.mail_from), list(envelope.rcpt_tos), message, login))
        return "250 Message accepted for delivery"


class SmtpServer:
    """An aiosmtpd server on 127.0.0.1 that can be stopped and started again on the same port."""

    def __init__(self, **smtp_kwargs: Any) -> None:
        self.handler = Recorder()
        self.port = free_port()
        self.smtp_kwargs = smtp_kwargs
        self.controller: Controller | None = None

    def start(self) -> None:
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port, **self.smtp_kwargs)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@dataclass
class NotifyStub:
    """What the stub Notify API was sent, and how it should answer."""

    service_id: str
    secret: str
    requests: list[dict[str, Any]] = field(default_factory=list)
    status: int = 201
    errors: list[dict[str, str]] = field(default_factory=list)
    delay: float = 0.0

    @property
    def api_key(self) -> str:
        return f"ehcp_test-{self.service_id}-{self.secret}"


def notify_handler(stub: NotifyStub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def answer(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            try:
                self.wfile.write(data)
            except BrokenPipeError:
                pass  # the client gave up waiting: the timeout test

        def refuse(self, status: int, error: str, message: str) -> None:
            self.answer(status, {"status_code": status, "errors": [{"error": error, "message": message}]})

        def do_POST(self) -> None:
            if stub.delay:
                time.sleep(stub.delay)
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if self.path != "/v2/notifications/email":
                return self.refuse(404, "NotFound", "not found")
            scheme, _, token = self.headers.get("Authorization", "").partition(" ")
            try:
                claims = jwt.decode(token, stub.secret, algorithms=["HS256"], options={"require": ["iss", "iat"]})
            except jwt.PyJWTError as error:
                return self.refuse(403, "AuthError", f"Invalid token: {error}")
            if scheme != "Bearer" or claims["iss"] != stub.service_id:
                return self.refuse(403, "AuthError", "Invalid token: service not found")
            personalisation = body.get("personalisation", {})
            for name in ("email_address", "template_id", "reference"):
                if not isinstance(body.get(name), str):
                    return self.refuse(400, "ValidationError", f"{name} is a required property")
            for name in ("subject", "body"):
                if name not in personalisation:
                    return self.refuse(400, "BadRequestError", f"Missing personalisation: {name}")
            stub.requests.append(body)
            if stub.status != 201:
                return self.answer(stub.status, {"status_code": stub.status, "errors": stub.errors})
            notification_id = str(uuid.uuid4())
            self.answer(
                201,
                {
                    "id": notification_id,
                    "reference": body["reference"],
                    "content": {
                        "subject": personalisation["subject"],
                        "body": personalisation["body"],
                        "from_email": "send.team@notifications.service.gov.uk",
                        "one_click_unsubscribe_url": None,
                    },
                    "uri": f"http://127.0.0.1/v2/notifications/{notification_id}",
                    "template": {"id": body["template_id"], "version": 1, "uri": "http://127.0.0.1/template"},
                    "scheduled_for": None,
                },
            )

    return Handler
