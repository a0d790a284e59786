"""A council's settings: ``config.yaml`` parsed once into a typed object; ``EHCP_*`` variables win.

Nothing else in the engine reads the environment.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import ConfigError
from .roles import STAFF_ROLES
from .store.database import parse


class StaffMember(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    email: str = Field(min_length=3)
    role: str
    manager: str | None = None  # a caseworker's team manager (staff id): escalations for their cases go there
    digest: bool = False  # one daily digest of due and overdue deadlines instead of single reminders
    # The team whose cases a caseworker sees beside their own (the web application); by default a
    # caseworker's team is their manager's id, and a manager's their own.
    team: str | None = None

    def team_name(self) -> str:
        return self.team or (self.manager if self.role == "caseworker" and self.manager else self.id)

    @field_validator("role")
    @classmethod
    def _role(cls, value: str) -> str:
        if value not in STAFF_ROLES:
            raise ValueError(f"'{value}' is not a staff role; known: {', '.join(STAFF_ROLES)}")
        return value


class Council(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = "Demo County Council"
    logo: str | None = None  # an image file for the top of documents (relative to config.yaml)
    # The council's 3-digit code in the DfE's returns (LEA in the SEN2 return), e.g. 873.
    la_code: str | None = Field(default=None, pattern=r"^[0-9]{3}$")
    # Whether the council has a designated medical, clinical and social care officer, for the SEN2
    # return: Y, N, or R (being recruited).
    designated_officers: dict[Literal["dmo", "dco", "dsco"], Literal["Y", "N", "R"]] = Field(default_factory=dict)


class PolicyStep(BaseModel):
    """A reminder (``before``) or an escalation (``after``), as in a workflow file's defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    before: str | None = None
    after: str | None = None
    to: str | list[str]


class WorkflowSettings(BaseModel):
    """A council's choices for one workflow: its readings of open points, its reminder policy."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    parameters: dict[str, str] = Field(default_factory=dict)
    reminders: list[PolicyStep] | None = None
    escalations: list[PolicyStep] | None = None


class PolicySettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    reminders: list[PolicyStep] | None = None
    escalations: list[PolicyStep] | None = None


class SmtpSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    host: str = "localhost"
    port: int = 25
    tls: Literal["none", "starttls", "tls"] = "starttls"
    username: str | None = None
    password: str | None = None
    ca_file: str | None = None
    timeout: float = 30


class NotifySettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    api_key: str | None = None
    base_url: str = "https://api.notifications.service.gov.uk"
    template_id: str | None = None  # a Notify template whose subject is ((subject)) and body ((body))
    templates: dict[str, str] = Field(default_factory=dict)  # per message template, when a council has its own
    email_reply_to_id: str | None = None


class RetrySettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    attempts: int = Field(default=6, ge=1)
    first_delay_seconds: float = Field(default=60, ge=0)  # doubled after each failed attempt
    max_delay_seconds: float = Field(default=3600, ge=0)
    sending_lease_seconds: float = Field(default=600, gt=0)  # a claim older than this was a crash


class NotificationSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    transport: Literal["smtp", "notify", "folder"] = "smtp"
    sender: str = "SEND team <send@example.org>"
    reply_to: str | None = None
    outbox_dir: str = "data/outbox"  # .eml files (folder transport) and letters for printing
    smtp: SmtpSettings = Field(default_factory=SmtpSettings)
    notify: NotifySettings = Field(default_factory=NotifySettings)
    retry: RetrySettings = Field(default_factory=RetrySettings)
    digest_days: int = Field(default=14, ge=0)  # a digest lists deadlines due within this many days


class SchedulerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    interval_minutes: float = Field(default=5, gt=0)
    sweep_batch: int = Field(default=500, ge=1)


class CaseworkSettings(BaseModel):
    """How the service takes a caseworker's steps."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    # A step may be dated up to this many days after today (0: never after today).
    future_tolerance_days: int = Field(default=0, ge=0, le=14)
    # Where the messages of a case with no caseworker go; without it every case needs a caseworker.
    team_inbox: str | None = None


class OidcSettings(BaseModel):
    """Sign-in through the council's identity provider (OpenID Connect; Microsoft Entra ID, say)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    issuer: str = Field(min_length=1)  # discovery at {issuer}/.well-known/openid-configuration
    client_id: str = Field(min_length=1)
    client_secret: str | None = None  # in the environment: EHCP_OIDC_CLIENT_SECRET
    claim: str = "email"  # the claim naming the member of staff (their email, or staff id, in config.yaml)
    label: str = "Sign in with your council account"


class WebSettings(BaseModel):
    """The staff web application (``ehcp serve``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    # The council's colour and font, built into the stylesheet by scripts/build-assets.sh.
    brand_colour: str = Field(default="#4c2c92", pattern=r"^#[0-9a-fA-F]{6}$")
    font: str = Field(default='system-ui, "Segoe UI", Roboto, Helvetica, Arial, sans-serif', max_length=200)
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    idle_minutes: int = Field(default=30, ge=1, le=480)  # signed out after this long without a request
    session_hours: int = Field(default=10, ge=1, le=24)  # the longest a session lasts, however busy
    # The address staff reach the service at (https://...): links in emails and the single sign-on
    # return address are built from it, never from a request's Host header.
    public_url: str | None = Field(default=None, pattern=r"^https?://[^\s/]+(/[^\s]*)?$")
    lockout_after: int = Field(default=5, ge=1, le=50)  # failed sign-ins in a row before a lock-out
    lockout_minutes: int = Field(default=15, ge=1, le=1440)
    secure_cookies: bool = True  # browsers keep Secure cookies on http://localhost too
    oidc: OidcSettings | None = None  # sign-in through the council's identity provider, beside local accounts

    def address(self) -> str:
        """The service's own address, for links it sends."""
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")


class UploadSettings(BaseModel):
    """Files sent through the online service (engine.uploads): checked by their content, stored by hash."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    max_megabytes: int = Field(default=10, ge=1, le=100)
    # A malware scan before a file is kept: clamd at "unix:///var/run/clamav/clamd.ctl" or
    # "tcp://127.0.0.1:3310". Unset: no scan. Set and unreachable: the file is refused, never kept unscanned.
    clamd: str | None = Field(default=None, pattern=r"^(unix://\S+|tcp://[^\s:/]+:\d+)$")
    clamd_timeout_seconds: float = Field(default=30, gt=0, le=600)


class PortalSettings(BaseModel):
    """The online service for families and the professionals who give advice (engine.portal)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    invitation_days: int = Field(default=7, ge=1, le=28)  # how long the link in an invitation works
    link_minutes: int = Field(default=30, ge=5, le=1440)  # a link asked for on the sign-in page
    code_minutes: int = Field(default=10, ge=2, le=60)  # the code sent after the link is used
    code_tries: int = Field(default=5, ge=1, le=10)  # wrong codes before the sign-in starts again


class ReportSettings(BaseModel):
    """What the reports compare the council with (engine.reports)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    # A figure to compare with instead of England's published one (engine.national): a region's, say.
    # Unset, the charts draw England's latest year.
    national_percent: float | None = Field(default=None, ge=0, le=100)
    national_label: str = Field(default="England", max_length=80)
    # A limit is "at risk" when the chance it will be missed (engine.risk) is at least this.
    at_risk_percent: int = Field(default=50, ge=1, le=100)


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    casework: CaseworkSettings = Field(default_factory=CaseworkSettings)
    council: Council = Field(default_factory=Council)
    policy: PolicySettings = Field(default_factory=PolicySettings)
    workflows: dict[str, WorkflowSettings] = Field(default_factory=dict)
    database_url: str = "sqlite:///data/ehcp.sqlite"
    # PostgreSQL: the login that owns the tables, for 'ehcp db init|upgrade|downgrade' only; the service
    # then runs as database_url's login, which can read and write rows and nothing else (docs/security.md).
    database_owner_url: str | None = None
    workflows_dir: str = "workflows"
    # Operating-system account -> staff id: who the command line acts for ("*": any other account,
    # for a demo on one's own machine only; ehcp doctor reports it).
    accounts: dict[str, str] = Field(default_factory=dict)
    # The account the service runs as, when staff run the command through sudo as it (docs/security.md).
    service_account: str | None = None
    staff: list[StaffMember] = Field(default_factory=list)
    notifications: NotificationSettings = Field(default_factory=NotificationSettings)
    scheduler: SchedulerSettings = Field(default_factory=SchedulerSettings)
    web: WebSettings = Field(default_factory=WebSettings)
    portal: PortalSettings = Field(default_factory=PortalSettings)
    uploads: UploadSettings = Field(default_factory=UploadSettings)
    reports: ReportSettings = Field(default_factory=ReportSettings)
    templates_dir: str = "templates"
    documents_dir: str = "data/documents"  # rendered PDFs, named by the SHA-256 of their bytes
    # Each document is rendered in a child process with these limits; one that fails twice is failed.
    render_timeout_seconds: float = Field(default=120, gt=0, le=3600)
    render_memory_megabytes: int = Field(default=1024, ge=64, le=16384)
    base_dir: Path = Field(default=Path("."), exclude=True)
    # Secrets the file itself holds (not the environment): every command warns about them.
    secrets_in_file: tuple[str, ...] = Field(default=(), exclude=True)
    # The file these settings were read from (engine.identity checks who owns it).
    config_file: Path | None = Field(default=None, exclude=True)

    def workflows_path(self) -> Path:
        path = Path(self.workflows_dir)
        return path if path.is_absolute() else self.base_dir / path

    def templates_path(self) -> Path:
        path = Path(self.templates_dir)
        return path if path.is_absolute() else self.base_dir / path

    def outbox_path(self) -> Path:
        path = Path(self.notifications.outbox_dir)
        return path if path.is_absolute() else self.base_dir / path

    def database(self) -> str:
        """The database URL, a relative SQLite path taken from the configuration file's folder.

        Raises:
            DatabaseError: ``database_url`` is not a database URL.
        """
        url = parse(self.database_url)
        if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
            path = Path(url.database)
            if not path.is_absolute():
                return url.set(database=str((self.base_dir / path).resolve())).render_as_string(hide_password=False)
        return self.database_url

    def owner_database(self) -> str:
        """The URL migrations run on: the owner's login when one is set, else the service's own."""
        if self.database_owner_url:
            return Settings.model_validate(
                {"database_url": self.database_owner_url, "base_dir": self.base_dir}
            ).database()
        return self.database()


_ENV = {
    "EHCP_DATABASE_URL": "database_url",
    "EHCP_DATABASE_OWNER_URL": "database_owner_url",
    "EHCP_WORKFLOWS_DIR": "workflows_dir",
}

# Sending settings by environment (a secret such as a password or API key belongs here, not in the file).
_ENV_NESTED = {
    "EHCP_TRANSPORT": ("notifications", "transport"),
    "EHCP_SENDER": ("notifications", "sender"),
    "EHCP_OUTBOX_DIR": ("notifications", "outbox_dir"),
    "EHCP_SMTP_HOST": ("notifications", "smtp", "host"),
    "EHCP_SMTP_PORT": ("notifications", "smtp", "port"),
    "EHCP_SMTP_TLS": ("notifications", "smtp", "tls"),
    "EHCP_SMTP_USERNAME": ("notifications", "smtp", "username"),
    "EHCP_SMTP_PASSWORD": ("notifications", "smtp", "password"),
    "EHCP_SMTP_CA_FILE": ("notifications", "smtp", "ca_file"),
    "EHCP_NOTIFY_API_KEY": ("notifications", "notify", "api_key"),
    "EHCP_NOTIFY_BASE_URL": ("notifications", "notify", "base_url"),
    "EHCP_NOTIFY_TEMPLATE_ID": ("notifications", "notify", "template_id"),
    "EHCP_SCHEDULER_INTERVAL_MINUTES": ("scheduler", "interval_minutes"),
    "EHCP_OIDC_CLIENT_SECRET": ("web", "oidc", "client_secret"),
}


URL_PASSWORD = re.compile(r"://[^/@\s:]+:[^@\s]+@")  # a password in a URL (ehcp doctor too)


def _secrets_in(data: Mapping[str, Any]) -> tuple[str, ...]:
    """The keys of a configuration file's own data that hold a password or key."""
    found = []
    notifications = data.get("notifications") if isinstance(data.get("notifications"), dict) else {}
    for section, key in (("smtp", "password"), ("notify", "api_key")):
        part = notifications.get(section) if isinstance(notifications, dict) else None
        if isinstance(part, dict) and part.get(key):
            found.append(f"notifications.{section}.{key}")
    web = data.get("web")
    oidc = web.get("oidc") if isinstance(web, dict) else None
    if isinstance(oidc, dict) and oidc.get("client_secret"):
        found.append("web.oidc.client_secret")
    for key in ("database_url", "database_owner_url"):
        value = data.get(key)
        # A password in the URL's user part; no URL parser: SQLAlchemy's costs every command 0.1 s to import.
        if isinstance(value, str) and URL_PASSWORD.search(value):
            found.append(key)
    return tuple(found)


def load_settings(path: str | Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Read the configuration file (``path``, ``EHCP_CONFIG`` or ./config.yaml) and the environment."""
    env = os.environ if environ is None else environ
    chosen = Path(path or env.get("EHCP_CONFIG") or "config.yaml")
    data: dict[str, Any] = {}
    if chosen.exists():
        try:
            # libyaml's loader where it is installed: every command reads this file first.
            loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
            loaded = yaml.load(chosen.read_text(encoding="utf-8"), Loader=loader) or {}  # noqa: S506 - a safe loader
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"{chosen}:{mark.line + 1}" if mark is not None else str(chosen)
            raise ConfigError(f"{where}: not valid YAML") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{chosen}: the configuration is a mapping of keys")
        data.update(loaded)
    elif path is not None or env.get("EHCP_CONFIG"):
        raise ConfigError(f"{chosen}: no such configuration file")
    data["secrets_in_file"] = _secrets_in(data)
    for var, key in _ENV.items():
        if env.get(var):
            data[key] = env[var]
    for var, path_keys in _ENV_NESTED.items():
        if env.get(var):
            node = data
            for part in path_keys[:-1]:
                child = node.get(part)
                if not isinstance(child, dict):
                    child = {}
                    node[part] = child
                node = child
            node[path_keys[-1]] = env[var]
    if "user" in data:
        raise ConfigError(
            f"{chosen}: user: no longer says who the command line acts for; map operating-system accounts "
            "to staff ids under accounts: (docs/security.md)"
        )
    data["base_dir"] = chosen.resolve().parent if chosen.exists() else Path.cwd()
    data["config_file"] = chosen.resolve() if chosen.exists() else None
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        message = str(first["msg"]).removeprefix("Value error, ")
        raise ConfigError(f"{chosen}: {key}: {message}") from None
    ids = [s.id for s in settings.staff]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ConfigError(f"{chosen}: staff: the id {duplicates[0]} is used twice")
    for member in settings.staff:
        if member.manager is not None and member.manager not in ids:
            raise ConfigError(f"{chosen}: staff: {member.id}'s manager '{member.manager}' is not a member of staff")
    for account, staff_id in settings.accounts.items():
        if staff_id not in ids:
            raise ConfigError(f"{chosen}: accounts: {account}: '{staff_id}' is not a member of staff")
    return settings
