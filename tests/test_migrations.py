"""Alembic migrations: they build the schema the models describe, from an empty database, and back."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from engine.errors import EhcpError
from engine.store.database import connect, current_revision, downgrade, ensure_schema, head_revision, migrate
from engine.store.models import SQLModel


def test_migrations_apply_to_an_empty_database_and_match_the_models(database_url: str) -> None:
    engine = connect(database_url)
    assert current_revision(engine) is None
    migrate(engine)
    assert current_revision(engine) == head_revision()
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), SQLModel.metadata) == []
    downgrade(engine, "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    engine.dispose()


def test_a_new_database_is_created_but_a_foreign_one_is_refused(database_url: str) -> None:
    engine = connect(database_url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE somebody_elses (id integer)"))
    with pytest.raises(EhcpError, match="no schema version"):
        ensure_schema(engine)
    engine.dispose()
