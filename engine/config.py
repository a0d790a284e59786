"""A council's settings: ``config.yaml`` parsed once into a typed object; ``EHCP_*`` variables win.

Nothing else in the engine reads the environment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy.engine import make_url

from .errors import ConfigError
from .roles import STAFF_ROLES


class StaffMember(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    email: str = Field(min_length=3)
    role: str

    @field_validator("role")
    @classmethod
    def _role(cls, value: str) -> str:
        if value not in STAFF_ROLES:
            raise ValueError(f"'{value}' is not a staff role; known: {', '.join(STAFF_ROLES)}")
        return value


class Council(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = "Demo County Council"


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


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    council: Council = Field(default_factory=Council)
    policy: PolicySettings = Field(default_factory=PolicySettings)
    workflows: dict[str, WorkflowSettings] = Field(default_factory=dict)
    database_url: str = "sqlite:///data/ehcp.sqlite"
    workflows_dir: str = "workflows"
    user: str | None = None
    staff: list[StaffMember] = Field(default_factory=list)
    base_dir: Path = Field(default=Path("."), exclude=True)

    def workflows_path(self) -> Path:
        path = Path(self.workflows_dir)
        return path if path.is_absolute() else self.base_dir / path

    def database(self) -> str:
        """The database URL, a relative SQLite path taken from the configuration file's folder."""
        url = make_url(self.database_url)
        if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
            path = Path(url.database)
            if not path.is_absolute():
                return url.set(database=str((self.base_dir / path).resolve())).render_as_string(hide_password=False)
        return self.database_url


_ENV = {
    "EHCP_DATABASE_URL": "database_url",
    "EHCP_WORKFLOWS_DIR": "workflows_dir",
    "EHCP_USER": "user",
}


def load_settings(path: str | Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Read the configuration file (``path``, ``EHCP_CONFIG`` or ./config.yaml) and the environment."""
    env = os.environ if environ is None else environ
    chosen = Path(path or env.get("EHCP_CONFIG") or "config.yaml")
    data: dict[str, object] = {}
    if chosen.exists():
        try:
            loaded = yaml.safe_load(chosen.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"{chosen}:{mark.line + 1}" if mark is not None else str(chosen)
            raise ConfigError(f"{where}: not valid YAML") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{chosen}: the configuration is a mapping of keys")
        data.update(loaded)
    elif path is not None or env.get("EHCP_CONFIG"):
        raise ConfigError(f"{chosen}: no such configuration file")
    for var, key in _ENV.items():
        if env.get(var):
            data[key] = env[var]
    data["base_dir"] = chosen.resolve().parent if chosen.exists() else Path.cwd()
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
    return settings
