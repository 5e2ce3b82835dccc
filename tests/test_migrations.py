"""The migrations and the models describe the same schema, on each database."""
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from expertbook.extensions import db


def test_models_and_migrations_agree(app):
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, db.metadata)
    assert diff == [], f"models and migrations disagree; run 'flask db migrate': {diff}"


# What the downgrades delete by design (records whose owner was deleted had none to go back to).
_DELETED_BY_DOWNGRADE = {
    "appointments": "user_id IS NULL",
    "bookings": "customer_id IS NULL",
    "login_sessions": "kind <> 'web'",
}
# The oldest revision the round trip goes back to: before the first migration that rebuilds tables on SQLite.
_ROUND_TRIP_FROM = "0009_email_templates_by_area"


def _row_counts(tables=None) -> dict[str, int]:
    from sqlalchemy import inspect, text

    with db.engine.connect() as conn:
        names = tables if tables is not None else [t for t in inspect(conn).get_table_names() if t != "alembic_version"]
        return {name: conn.execute(text(f'SELECT count(*) FROM "{name}"')).scalar_one() for name in names}


def test_migrations_keep_every_row_down_and_up_again(app, backend):
    """A database full of data goes down to an old revision and up to head again, losing no row.

    On SQLite a column change rebuilds the table; with foreign keys on, dropping the old table used to
    cascade into every table that references it (upgrading to 0010 emptied meetings and appointments).
    """
    from flask_migrate import downgrade, upgrade
    from sqlalchemy import text

    from expertbook import demo

    demo.load(app.config["DEMO_PASSWORD"])
    db.session.remove()
    at_head = _row_counts()
    with db.engine.connect() as conn:
        expected_loss = {
            table: conn.execute(text(f"SELECT count(*) FROM {table} WHERE {where}")).scalar_one()
            for table, where in _DELETED_BY_DOWNGRADE.items()
        }
    assert at_head["appointments"] and at_head["bookings"] and at_head["slots"] and at_head["outbox_emails"]

    downgrade(revision=_ROUND_TRIP_FROM)
    db.engine.dispose()
    down = _row_counts()
    expected_down = {table: at_head[table] - expected_loss.get(table, 0) for table in down}
    assert down == expected_down

    upgrade()
    db.engine.dispose()
    assert _row_counts(list(down)) == down
