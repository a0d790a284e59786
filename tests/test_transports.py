"""The transports against real servers on loopback: aiosmtpd for SMTP (plain, STARTTLS, implicit TLS),
a small HTTP server speaking GOV.UK Notify's API, a folder, and a PDF parsed back."""

from __future__ import annotations

import email
import io
import shutil
import ssl
import subprocess
import uuid
from dataclasses import dataclass, replace
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from pypdf import PdfReader
from pypdf.generic import DictionaryObject
from servers import NotifyStub, SmtpServer, free_port

from notifications.folder import FolderTransport
from notifications.letters import write_letter
from notifications.message import Email, Letter, PermanentFailure, TemporaryFailure, Transport
from notifications.notify import NotifyTransport
from notifications.smtp import SmtpTransport, build_email

RECIPIENT = "sam.parent@example.org"

EMAIL = Email(
    key="case-41:deadline_reminder:final_plan/2025-05-01",
    to=RECIPIENT,
    to_name="Sam Example",
    subject="Your child's EHC plan: the final plan is due",
    text="Dear Sam Example,\n\nThe final EHC plan is due by 1 May 2025.\n",
    html="<p>Dear Sam Example,</p><p>The final EHC plan is due by <strong>1 May 2025</strong>.</p>",
    template="deadline_reminder",
    sender="SEND Team <send@council.example.gov.uk>",
    reply_to="casework@council.example.gov.uk",
)
MESSAGE_ID = "<case-41.deadline_reminder.final_plan.2025-05-01@council.example.gov.uk>"


def message_id_of(message: EmailMessage) -> str:
    """The Message-ID as sent. A long one is folded onto a line of its own (RFC 5322 allows folding
    before the "<"), and Python's parser keeps the folding's space at its front."""
    return str(message["Message-ID"]).strip()


@dataclass(frozen=True)
class Certificate:
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        return context


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    """A self-signed certificate for localhost and 127.0.0.1, made with the openssl command."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is not installed")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        + ["-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=localhost"]
        + ["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True,
        capture_output=True,
    )
    return Certificate(cert, key)


def plain(server: SmtpServer, **kwargs: Any) -> SmtpTransport:
    return SmtpTransport("127.0.0.1", server.port, "none", timeout=3, **kwargs)


def test_smtp_delivers_the_message_once_with_its_headers_and_both_parts(smtp_server: SmtpServer) -> None:
    with plain(smtp_server) as smtp:
        returned = smtp.send(EMAIL)

    assert returned == MESSAGE_ID
    [received] = smtp_server.handler.received
    assert received.mail_from == "send@council.example.gov.uk"
    assert received.rcpt_tos == [RECIPIENT]
    message = received.message
    assert message["From"] == "SEND Team <send@council.example.gov.uk>"
    assert message["To"] == f"Sam Example <{RECIPIENT}>"
    assert message["Subject"] == EMAIL.subject
    assert message_id_of(message) == MESSAGE_ID
    assert message["X-EHCP-Key"] == EMAIL.key
    assert message["Reply-To"] == "casework@council.example.gov.uk"
    assert message["Date"] is not None
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and "due by 1 May 2025" in text.get_content()
    assert html is not None and "<strong>1 May 2025</strong>" in html.get_content()


def test_a_message_without_html_is_plain_text_and_a_repeat_keeps_its_message_id() -> None:
    text_only = replace(EMAIL, html=None, reply_to=None, to_name=None)
    first, again = build_email(text_only), build_email(text_only)
    assert first.get_content_type() == "text/plain"
    assert first["To"] == RECIPIENT
    assert first["Reply-To"] is None
    assert first["Message-ID"] == again["Message-ID"] == MESSAGE_ID


def test_smtp_reuses_one_connection_for_several_sends(smtp_server: SmtpServer) -> None:
    smtp = plain(smtp_server)
    smtp.send(EMAIL)
    smtp.send(replace(EMAIL, key="case-41:second"))
    smtp.close()
    smtp.send(replace(EMAIL, key="case-41:third"))
    smtp.close()

    peers = [r.peer for r in smtp_server.handler.received]
    assert len(peers) == 3
    assert peers[0] == peers[1]  # the same client socket: one connection
    assert peers[2] != peers[0]  # close() ended it; the next send opened another


def test_smtp_starttls_with_login(certificate: Certificate) -> None:
    def authenticator(server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"ehcp", b"s3cret")
        # handled=False: aiosmtpd then answers 535 itself; with the default it would answer nothing.
        return AuthResult(success=ok, handled=False, auth_data=data)

    server = SmtpServer(
        tls_context=certificate.server_context(),
        require_starttls=True,
        auth_required=True,
        auth_require_tls=True,
        authenticator=authenticator,
    )
    server.start()
    try:
        common: dict[str, Any] = {"timeout": 3, "ca_file": str(certificate.cert), "helo": "ehcp.council.example"}
        with SmtpTransport("localhost", server.port, "starttls", username="ehcp", password="s3cret", **common) as smtp:
            assert smtp.send(EMAIL) == MESSAGE_ID
        [received] = server.handler.received
        assert received.login == b"ehcp"

        with pytest.raises(PermanentFailure, match="login refused") as refused:
            SmtpTransport("127.0.0.1", server.port, "starttls", username="ehcp", password="wrong", **common).send(EMAIL)
        assert "535" in str(refused.value)

        # Without STARTTLS the server will not take the message at all.
        with pytest.raises(PermanentFailure, match="530"):
            SmtpTransport("127.0.0.1", server.port, "none", timeout=3).send(EMAIL)
        assert len(server.handler.received) == 1
    finally:
        server.stop()


def test_smtp_implicit_tls_trusts_the_given_ca_and_no_other(certificate: Certificate) -> None:
    server = SmtpServer(ssl_context=certificate.server_context())
    server.start()
    try:
        with SmtpTransport("127.0.0.1", server.port, "tls", timeout=3, ca_file=str(certificate.cert)) as smtp:
            assert smtp.send(EMAIL) == MESSAGE_ID
        assert [r.message["Subject"] for r in server.handler.received] == [EMAIL.subject]

        with pytest.raises(TemporaryFailure, match="certificate is not trusted"):
            SmtpTransport("127.0.0.1", server.port, "tls", timeout=3).send(EMAIL)
    finally:
        server.stop()


def test_smtp_server_down_is_temporary_and_the_next_send_reconnects(smtp_server: SmtpServer) -> None:
    smtp = plain(smtp_server)
    smtp.send(EMAIL)  # leaves a connection open
    smtp_server.stop()

    with pytest.raises(TemporaryFailure, match=rf"127\.0\.0\.1:{smtp_server.port}: connection refused") as down:
        smtp.send(replace(EMAIL, key="case-41:second"))
    assert RECIPIENT not in str(down.value)

    smtp_server.start()  # back, on the same port
    assert smtp.send(replace(EMAIL, key="case-41:second")).startswith("<case-41.second@")
    smtp.close()
    assert [r.message["X-EHCP-Key"] for r in smtp_server.handler.received] == [EMAIL.key, "case-41:second"]


def test_smtp_timeout_is_temporary_and_the_next_send_uses_a_new_connection(smtp_server: SmtpServer) -> None:
    smtp = SmtpTransport("127.0.0.1", smtp_server.port, "none", timeout=0.3)
    smtp.send(replace(EMAIL, key="warm-up"))
    smtp_server.handler.data_delay = 1.0

    with pytest.raises(TemporaryFailure, match=r"timed out after 0\.3s"):
        smtp.send(EMAIL)

    # The server may yet take the timed-out message; a reply arriving late must not be read as the
    # answer to the next command, so that connection is gone.
    smtp_server.handler.data_delay = 0.0
    smtp.send(replace(EMAIL, key="after"))
    smtp.close()
    by_key = {str(r.message["X-EHCP-Key"]): r.peer for r in smtp_server.handler.received}
    assert by_key["after"] != by_key["warm-up"]


def test_smtp_nothing_listening_is_temporary() -> None:
    with pytest.raises(TemporaryFailure, match="connection refused"):
        SmtpTransport("127.0.0.1", free_port(), "none", timeout=1).send(EMAIL)


@pytest.mark.parametrize(
    ("stage", "reply", "failure"),
    [
        ("rcpt", "451 4.3.0 <{address}>: Temporary lookup failure", TemporaryFailure),
        ("rcpt", "550 5.1.1 <{address}>: Recipient address rejected: User unknown", PermanentFailure),
        ("data", "451 4.7.1 Try again later", TemporaryFailure),
        ("data", "554 5.7.1 Message rejected as spam", PermanentFailure),
    ],
)
def test_smtp_refusals_are_temporary_for_4xx_and_permanent_for_5xx_and_never_name_the_recipient(
    smtp_server: SmtpServer, stage: str, reply: str, failure: type[Exception]
) -> None:
    if stage == "rcpt":
        smtp_server.handler.rcpt_reply = reply
    else:
        smtp_server.handler.data_reply = reply
    smtp = plain(smtp_server)

    with pytest.raises(failure) as raised:
        smtp.send(EMAIL)
    said = str(raised.value)
    assert reply[:3] in said
    assert f"127.0.0.1:{smtp_server.port}" in said
    assert RECIPIENT not in said.lower() and "sam example" not in said.lower()
    assert "1 May 2025" not in said
    assert raised.value.__cause__ is None and raised.value.__suppress_context__

    # The same transport sends once the server takes mail again.
    smtp_server.handler.rcpt_reply = smtp_server.handler.data_reply = None
    smtp.send(EMAIL)
    smtp.close()
    assert len(smtp_server.handler.received) == 1


def test_smtp_settings_are_checked_when_made() -> None:
    with pytest.raises(ValueError, match="tls"):
        SmtpTransport("127.0.0.1", 25, "ssl")


# --- GOV.UK Notify ---------------------------------------------------------------------------------


TEMPLATE = str(uuid.uuid4())


def test_notify_sends_subject_and_body_to_the_generic_template(notify: tuple[NotifyStub, str]) -> None:
    stub, url = notify
    transport: Transport = NotifyTransport(stub.api_key, TEMPLATE, base_url=url, timeout=3)

    notification_id = transport.send(replace(EMAIL, personalisation={"case_ref": "41"}))

    [sent] = stub.requests
    assert uuid.UUID(notification_id)
    assert sent["email_address"] == RECIPIENT
    assert sent["template_id"] == TEMPLATE
    assert sent["reference"] == EMAIL.key
    assert sent["personalisation"] == {"subject": EMAIL.subject, "body": EMAIL.text, "case_ref": "41"}
    assert "email_reply_to_id" not in sent


def test_notify_uses_a_template_of_its_own_and_the_reply_to_id(notify: tuple[NotifyStub, str]) -> None:
    stub, url = notify
    own, reply_to = str(uuid.uuid4()), str(uuid.uuid4())
    transport = NotifyTransport(
        stub.api_key, TEMPLATE, base_url=url, templates={"deadline_reminder": own}, email_reply_to_id=reply_to
    )

    transport.send(EMAIL)
    transport.send(replace(EMAIL, template="decision_letter"))

    assert [r["template_id"] for r in stub.requests] == [own, TEMPLATE]
    assert [r["email_reply_to_id"] for r in stub.requests] == [reply_to, reply_to]


def test_notify_bad_request_is_permanent_with_notifys_reason_but_not_the_address(
    notify: tuple[NotifyStub, str],
) -> None:
    stub, url = notify
    stub.status = 400
    stub.errors = [{"error": "BadRequestError", "message": f"Can't send to {RECIPIENT} using a team-only API key"}]

    with pytest.raises(PermanentFailure) as raised:
        NotifyTransport(stub.api_key, TEMPLATE, base_url=url, timeout=3).send(EMAIL)

    said = str(raised.value)
    assert "400 BadRequestError: Can't send to <recipient> using a team-only API key" in said
    assert RECIPIENT not in said
    assert raised.value.__cause__ is None and raised.value.__suppress_context__


def test_notify_wrong_key_is_permanent(notify: tuple[NotifyStub, str]) -> None:
    stub, url = notify
    wrong = f"ehcp_test-{stub.service_id}-{uuid.uuid4()}"

    with pytest.raises(PermanentFailure, match="403 AuthError: Invalid token"):
        NotifyTransport(wrong, TEMPLATE, base_url=url, timeout=3).send(EMAIL)
    assert stub.requests == []


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (500, {"error": "Exception", "message": "Internal server error"}),
        (
            429,
            {
                "error": "RateLimitError",
                "message": "Exceeded rate limit for key type LIVE of 3000 requests per 60 seconds",
            },
        ),
    ],
)
def test_notify_server_errors_and_rate_limits_are_temporary(
    notify: tuple[NotifyStub, str], status: int, error: dict[str, str]
) -> None:
    stub, url = notify
    stub.status, stub.errors = status, [error]

    with pytest.raises(TemporaryFailure, match=f"{status} {error['error']}"):
        NotifyTransport(stub.api_key, TEMPLATE, base_url=url, timeout=3).send(EMAIL)


def test_notify_not_listening_or_too_slow_is_temporary(notify: tuple[NotifyStub, str]) -> None:
    stub, url = notify
    nowhere = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(TemporaryFailure, match="could not connect"):
        NotifyTransport(stub.api_key, TEMPLATE, base_url=nowhere, timeout=1).send(EMAIL)

    stub.delay = 1.0
    with pytest.raises(TemporaryFailure, match="no answer within 0.2s"):
        NotifyTransport(stub.api_key, TEMPLATE, base_url=url, timeout=0.2).send(EMAIL)


def test_notify_key_is_checked_when_made() -> None:
    with pytest.raises(ValueError, match="api_key"):
        NotifyTransport("ehcp_live-not-a-key", TEMPLATE)


# --- Folder ----------------------------------------------------------------------------------------


def test_folder_writes_an_eml_that_parses_back_and_a_repeat_overwrites_it(tmp_path: Path) -> None:
    folder = tmp_path / "outbox" / "mail"
    transport: Transport = FolderTransport(folder)

    name = transport.send(EMAIL)
    again = transport.send(replace(EMAIL, subject="Changed"))

    assert name == again == "case-41.deadline_reminder.final_plan.2025-05-01.eml"
    assert sorted(p.name for p in folder.iterdir()) == [name]
    message = email.message_from_bytes((folder / name).read_bytes(), policy=default_policy)
    assert isinstance(message, EmailMessage)
    assert message["Subject"] == "Changed"
    assert message["To"] == f"Sam Example <{RECIPIENT}>"
    assert message_id_of(message) == MESSAGE_ID
    assert message["X-EHCP-Key"] == EMAIL.key
    text = message.get_body(("plain",))
    assert text is not None and "due by 1 May 2025" in text.get_content()


def test_a_long_key_survives_header_folding(tmp_path: Path) -> None:
    key = "case-4100:annual_review:review_meeting/2025-05-01:reminder to caseworker and team manager:" + "x" * 60
    name = FolderTransport(tmp_path).send(replace(EMAIL, key=key))

    message = email.message_from_bytes((tmp_path / name).read_bytes(), policy=default_policy)
    assert isinstance(message, EmailMessage)
    assert message["X-EHCP-Key"] == key
    assert message_id_of(message) == f"<{name.removesuffix('.eml')}@council.example.gov.uk>"
    assert " " not in name and ":" not in name and "/" not in name


def test_folder_that_cannot_be_written_is_temporary(tmp_path: Path) -> None:
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the folder should be")
    with pytest.raises(TemporaryFailure, match="cannot write"):
        FolderTransport(blocked).send(EMAIL)


# --- Letters ---------------------------------------------------------------------------------------

LETTER = Letter(
    key="case-41:decision/2025-02-10",
    to_name="Sam Example",
    subject="Decision on your request for an EHC needs assessment",
    html=(
        '<!doctype html><html lang="en-GB"><head><meta charset="utf-8"><title>Letter</title></head>'
        "<body><h1>Decision</h1><p>Dear Sam Example,</p>"
        "<p>We have agreed to carry out an EHC needs assessment.</p></body></html>"
    ),
)


def test_letter_is_a_tagged_pdf_with_its_text_title_and_language(tmp_path: Path) -> None:
    path = write_letter(LETTER, tmp_path)

    assert path == tmp_path / "letters" / "case-41.decision.2025-02-10.pdf"
    reader = PdfReader(io.BytesIO(path.read_bytes()))
    assert "agreed to carry out an EHC needs assessment" in reader.pages[0].extract_text()
    assert reader.metadata is not None and reader.metadata.title == LETTER.subject
    catalog = reader.root_object
    assert str(catalog["/Lang"]) == "en-GB"
    mark_info = catalog["/MarkInfo"].get_object()
    assert isinstance(mark_info, DictionaryObject) and bool(mark_info["/Marked"])  # tagged, for screen readers
    assert write_letter(LETTER, tmp_path) == path
    assert [p.name for p in (tmp_path / "letters").iterdir()] == [path.name]


def test_letter_folder_that_cannot_be_written_is_temporary(tmp_path: Path) -> None:
    (tmp_path / "letters").write_text("a file where the folder should be")
    with pytest.raises(TemporaryFailure, match="cannot write"):
        write_letter(LETTER, tmp_path)


def test_a_login_is_never_sent_over_plain_text() -> None:
    with pytest.raises(ValueError, match="never sent over plain text"):
        SmtpTransport("127.0.0.1", 25, "none", username="ehcp", password="s3cret")
