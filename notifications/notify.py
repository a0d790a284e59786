"""Sending through GOV.UK Notify, as many councils already do for their other services.

>>> notify = NotifyTransport(api_key="ehcp_live-<service id>-<secret>", template_id="<generic template id>")
>>> notification_id = notify.send(email)

The usual set-up is one generic Notify email template whose subject is ((subject)) and whose body is
((body)); the engine's rendered subject and text fill them. `templates` maps one of our message
templates (e.g. "deadline_reminder") to a Notify template of its own where a council has made one;
`message.personalisation` then supplies its fields.
"""

from __future__ import annotations

import re
from typing import Any, NoReturn

import requests
from notifications_python_client.errors import APIError, HTTPError
from notifications_python_client.notifications import NotificationsAPIClient

from notifications.message import Email, PermanentFailure, TemporaryFailure
from notifications.smtp import redact

NOTIFY_URL = "https://api.notifications.service.gov.uk"

# `{key name}-{service id}-{secret}`, both ids UUIDs: the client slices the key by position, so a
# key cut short in a config file would otherwise fail later, at every send, as a 403.
_UUID = r"[0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12}"
_API_KEY = re.compile(rf".+-{_UUID}-{_UUID}", re.IGNORECASE)


class NotifyTransport:
    """Hands messages to GOV.UK Notify; returns Notify's notification id once it answered 201."""

    name = "notify"

    def __init__(
        self,
        api_key: str,
        template_id: str,
        base_url: str = NOTIFY_URL,
        templates: dict[str, str] | None = None,
        email_reply_to_id: str | None = None,
        timeout: float = 30,
    ) -> None:
        """`templates`: our message template's name -> the Notify template id to use instead of `template_id`.

        `email_reply_to_id`: the id of a reply-to address set up in Notify (Notify sends from its own
        address; `Email.reply_to` has no place in its API).
        """
        if not _API_KEY.fullmatch(api_key):
            raise ValueError("api_key: not a Notify API key (expected key name-service id-secret key)")
        self.template_id = template_id
        self.base_url = base_url
        self.templates = dict(templates or {})
        self.email_reply_to_id = email_reply_to_id
        self.timeout = timeout
        # The client ships py.typed but leaves its methods unannotated.
        self._client = NotificationsAPIClient(api_key, base_url=base_url, timeout=timeout)  # type: ignore[no-untyped-call]

    def send(self, message: Email) -> str:
        personalisation = {"subject": message.subject, "body": message.text, **message.personalisation}
        about = f"message {message.key} via GOV.UK Notify at {self.base_url}"
        try:
            response: Any = self._client.send_email_notification(  # type: ignore[no-untyped-call]
                email_address=message.to,
                template_id=self.templates.get(message.template, self.template_id),
                personalisation=personalisation,
                reference=message.key,
                email_reply_to_id=self.email_reply_to_id,
            )
        except HTTPError as error:
            self._fail(error, message, about)
        except APIError as error:
            # A 2xx whose body is not JSON: Notify may have taken the message, but we cannot tell.
            raise TemporaryFailure(f"{about}: unreadable answer ({error.status_code})") from None
        notification_id = response.get("id") if isinstance(response, dict) else None
        if not isinstance(notification_id, str):
            raise TemporaryFailure(f"{about}: the answer has no notification id")
        return notification_id

    def _fail(self, error: HTTPError, message: Email, about: str) -> NoReturn:
        cause = error.__cause__
        # The client reports a request that got no answer as a 503 with no response.
        if error.response is None or isinstance(cause, (requests.ConnectionError, requests.Timeout)):
            if isinstance(cause, requests.Timeout):
                raise TemporaryFailure(f"{about}: no answer within {self.timeout:g}s") from None
            kind = type(cause).__name__ if cause is not None else "request failed"
            raise TemporaryFailure(f"{about}: could not connect ({kind})") from None
        status = error.status_code
        # `from None`: the error holds the response, and with it the request body (the address and the text).
        text = redact(_error_text(error.message), message.to)
        if status == 429 or status >= 500:
            raise TemporaryFailure(f"{about}: {status} {text}") from None
        raise PermanentFailure(f"{about}: {status} {text}") from None


def _error_text(message: object) -> str:
    """Notify's answer as one line: `errors` is a list of {"error": ..., "message": ...}."""
    if isinstance(message, list):
        parts = []
        for item in message:
            if isinstance(item, dict):
                parts.append(": ".join(str(item[k]) for k in ("error", "message") if k in item))
            else:
                parts.append(str(item))
        text = "; ".join(parts)
    else:
        text = str(message)
    return " ".join(text.split())[:500]
