"""The case store: SQLModel tables, Alembic migrations, and the one-transaction write path."""
