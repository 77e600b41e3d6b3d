"""The migrations build exactly the models: no drift for autogenerate to find."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import upgrade
from sqlalchemy import inspect, text

from app.extensions import db


def test_upgrade_from_empty_matches_the_models(app):
    with app.app_context():
        if db.engine.dialect.name == "postgresql":
            with db.engine.begin() as conn:
                conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        else:
            db.drop_all()
        assert "transactions" not in inspect(db.engine).get_table_names()

        upgrade()

        with db.engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            diff = compare_metadata(context, db.metadata)
        assert diff == []
        assert {"apps", "admins", "transactions", "transaction_events"} <= set(
            inspect(db.engine).get_table_names()
        )
