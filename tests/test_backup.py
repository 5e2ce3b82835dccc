"""The backup and restore drill of docs/operations.md, run: pg_dump -Fc, pg_restore into a new database, check it."""
from __future__ import annotations

import os
import shutil
import subprocess

from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from expertbook import create_app
from expertbook.clinic import booking
from expertbook.clinic.models import Appointment
from expertbook.extensions import db
from expertbook.notifications.models import OutboxEmail
from tests.conftest import _test_config, missing, require_postgres, throwaway_postgres
from tests.factories import make_slot, make_users

TABLES = ("users", "slots", "appointments", "outbox_emails")


def _run(tool: str, url: str, *args: str) -> None:
    """Run pg_dump / pg_restore against the database of a SQLAlchemy URL."""
    parsed = make_url(url)
    options = ["--host", parsed.host or "127.0.0.1", "--port", str(parsed.port or 5432), "--dbname", parsed.database]
    if parsed.username:
        options += ["--username", parsed.username]
    env = {**os.environ, **({"PGPASSWORD": parsed.password} if parsed.password else {})}
    subprocess.run([tool, *options, *args], check=True, timeout=120, env=env)


def _counts(url: str) -> dict[str, int]:
    engine = create_engine(url)
    with engine.connect() as conn:
        counts = {table: conn.scalar(text(f"SELECT count(*) FROM {table}")) for table in TABLES}
        counts["alembic_version"] = conn.scalar(text("SELECT version_num FROM alembic_version"))
    engine.dispose()
    return counts


def test_a_dump_restores_into_a_working_database(tmp_path):
    tools = {name: shutil.which(name) for name in ("pg_dump", "pg_restore")}
    if not all(tools.values()):
        missing("PostgreSQL client tools", "pg_dump / pg_restore are not installed (apt-get install postgresql-client)")
    with throwaway_postgres("backup") as source, throwaway_postgres("restored") as target:
        source, target = require_postgres(source), require_postgres(target)
        app = create_app(_test_config(source))
        with app.app_context():
            slot_id = make_slot(capacity=10).id
            for user in make_users(3):
                booking.book(slot_id, user.id, "Asha Rao", "9876543210")
            db.session.remove()
            db.engine.dispose()
        before = _counts(source)
        assert before["appointments"] == 3 and before["outbox_emails"] >= 3

        dump = tmp_path / "expertbook.dump"
        _run(tools["pg_dump"], source, "--format=custom", "--no-owner", "--file", str(dump))
        # The drill restores into a new, empty database; `throwaway_postgres` built the schema already, so empty it.
        engine = create_engine(target)
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        engine.dispose()
        _run(tools["pg_restore"], target, "--no-owner", "--exit-on-error", str(dump))

        assert _counts(target) == before
        # The restored database works: its sequences continue, so a new booking gets the next token.
        restored = create_app(_test_config(target))
        with restored.app_context():
            user = make_users(1)[0]
            made = booking.book(slot_id, user.id, "Ravi Patel", "9876543210")
            assert made.token_number == 104
            assert db.session.scalar(select(func.count()).select_from(Appointment)) == 4
            assert db.session.scalar(select(func.count()).select_from(OutboxEmail)) > before["outbox_emails"]
            db.session.remove()
            db.engine.dispose()
