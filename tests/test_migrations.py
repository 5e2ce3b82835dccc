"""The migrations: they describe the models' schema, their ids never change once on main, an old id still
upgrades, and every downgrade keeps every row or refuses (changing nothing)."""
import ast
import re

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import current_app
from sqlalchemy import inspect, text

from expertbook.extensions import db
from expertbook.migration_guard import DowngradeRefused
from tests.conftest import ROOT

VERSIONS = ROOT / "migrations" / "versions"

# Every revision id that has landed on main, in order. A landed id is never renamed (a database upgraded to
# it could not be upgraded again: "Can't locate revision"); a new migration is appended here when it lands.
LANDED = [
    "0001_accounts",
    "0002_clinic",
    "0003_experts",
    "0004_notifications",
    "0005_video",
    "0006_meetings",
    "0007_composed_emails",
    "0008_appointments_slot_index",
    "0009_email_templates_by_area",
    "0010_account_control",
    "0011_meeting_create_marker",
    "0012_experts_more",
    "0013_front_desk",
    "0014_calendars",
    "0015_webhooks",
]
# Ids main carried before they were renumbered (before this test existed); migrations/env.py adopts them.
RENAMED_ON_MAIN = {"0009_account_control": "0010_account_control", "0010_meeting_create_marker": "0011_meeting_create_marker"}
# Downgrades that keep every row by themselves (an index, a rename of values).
KEEP_DATA = {"0008_appointments_slot_index", "0009_email_templates_by_area"}


def _config():
    return current_app.extensions["migrate"].migrate.get_config()


def _chain() -> list[str]:
    script = ScriptDirectory.from_config(_config())
    return [revision.revision for revision in reversed(list(script.walk_revisions()))]


def _current() -> str:
    with db.engine.connect() as conn:
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()


def _row_counts(tables=None) -> dict[str, int]:
    with db.engine.connect() as conn:
        names = tables if tables is not None else [t for t in inspect(conn).get_table_names() if t != "alembic_version"]
        return {name: conn.execute(text(f'SELECT count(*) FROM "{name}"')).scalar_one() for name in names}


def test_models_and_migrations_agree(app):
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, db.metadata)
    assert diff == [], f"models and migrations disagree; run 'flask db migrate': {diff}"


def test_the_landed_revision_ids_never_change_and_new_ones_come_after(app):
    chain = _chain()
    assert chain[: len(LANDED)] == LANDED, "a migration that landed on main was renamed, removed or reordered"
    for revision in chain[len(LANDED):]:  # not landed yet: NNNN_<topic>, numbered after the last one
        assert re.fullmatch(r"\d{4}_[a-z0-9_]+", revision) and int(revision[:4]) > int(chain[len(LANDED) - 1][:4]), revision
    for path in VERSIONS.glob("*.py"):
        source = path.read_text()
        revision = re.search(r"^revision = '([^']+)'", source, re.M).group(1)
        assert path.stem == revision, f"{path.name} holds revision {revision}"
    from_env = ast.literal_eval(re.search(r"^RENAMED_REVISIONS = (\{.*?^\})", (ROOT / "migrations" / "env.py").read_text(), re.M | re.S).group(1))
    assert {old: new for old, (new, _) in from_env.items()} == RENAMED_ON_MAIN
    assert not set(RENAMED_ON_MAIN) & set(chain)


@pytest.mark.parametrize("old", sorted(RENAMED_ON_MAIN))
def test_a_database_stamped_with_an_id_main_renamed_upgrades_to_head(app, old):
    """As a database upgraded by an earlier main: its schema is the renamed revision's, its stamp the old id."""
    from expertbook.notifications.models import OutboxEmail  # noqa: F401 - the table exists

    new = RENAMED_ON_MAIN[old]
    command.downgrade(_config(), new)
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = :old"), {"old": old})
        if old == "0009_account_control":
            # That database never ran 0009_email_templates_by_area: its waiting rows name templates the old way.
            conn.execute(text("INSERT INTO outbox_emails (kind, to_email, to_name, subject, template, context, message_id, status, attempts, "
                              "next_attempt_at, created_at) VALUES ('clinic-token', 'a@example.com', 'A', 's', 'clinic_token_confirmed', "
                              "'{}', '<old@x>', 'pending', 0, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"))
    db.engine.dispose()
    command.upgrade(_config(), "head")
    db.engine.dispose()
    assert _current() == _chain()[-1]
    if old == "0009_account_control":
        with db.engine.connect() as conn:
            assert conn.execute(text("SELECT template FROM outbox_emails WHERE message_id = '<old@x>'")).scalar_one() == "clinic/token_confirmed"


def test_every_downgrade_keeps_data_or_refuses():
    """Read from the source: each downgrade refuses (``refuse_if_data``, or its own count and ``raise``) before
    its first change, or is one of those that keep every row."""
    for path in sorted(VERSIONS.glob("*.py")):
        downgrade = path.read_text().split("def downgrade():", 1)[1]
        code = "\n".join(line for line in downgrade.splitlines() if not line.strip().startswith("#"))
        first_change = min((code.find(change) for change in ("op.drop", "op.batch_alter_table", "op.execute", "op.alter", "op.create")
                            if change in code), default=len(code))
        if path.stem in KEEP_DATA:
            assert "DELETE" not in code.upper() and "drop_table" not in code, path.name
            continue
        refusal = min((code.find(check) for check in ("refuse_if_data(revision,", "efusing to downgrade") if check in code), default=-1)
        assert 0 <= refusal < first_change, f"{path.name}: its downgrade must refuse before it drops anything"


# The oldest revision the round trip goes back to: before the first migration that rebuilds tables on SQLite.
_ROUND_TRIP_FROM = "0009_email_templates_by_area"


def _data_the_downgrades_keep() -> None:
    """Accounts, hospitals, doctors, sessions, appointments, experts, services, bookings and their meetings and
    emails, with none of what the later migrations added (which their downgrades refuse to drop)."""
    from tests.experts.helpers import next_weekday_at
    from tests.factories import make_appointment, make_expert, make_service, make_slot, make_users
    from expertbook.experts import service as experts

    users = make_users(4)
    slot = make_slot(capacity=10)
    for user in users[:3]:
        make_appointment(slot, user)
    expert = make_expert("Round Trip Expert")
    consult = make_service(expert)
    experts.book(users[3].id, consult.id, next_weekday_at(10), name=users[3].name, email=users[3].email)
    db.session.commit()
    with db.engine.begin() as conn:
        for statement in (
            "UPDATE users SET email_verified_at = NULL",
            "DELETE FROM login_sessions",
            "DELETE FROM account_tokens",
            "UPDATE meetings SET create_marker = NULL",
            "UPDATE outbox_emails SET template = 'notice', to_email = 'x@example.com', to_name = 'X', subject = 's', "
            "context = '{}', message_id = 'm' || id WHERE template IS NULL",
        ):
            conn.execute(text(statement))


def test_migrations_keep_every_row_down_and_up_again(app, backend):
    """A database full of data the downgrades keep goes down to an old revision and up to head, losing no row.

    On SQLite a column change rebuilds the table; with foreign keys on, dropping the old table used to
    cascade into every table that references it (upgrading to 0010 emptied meetings and appointments).
    """
    _data_the_downgrades_keep()
    db.session.remove()
    at_head = _row_counts()
    assert at_head["appointments"] and at_head["bookings"] and at_head["slots"] and at_head["outbox_emails"]

    command.downgrade(_config(), _ROUND_TRIP_FROM)
    db.engine.dispose()
    down = _row_counts()
    assert down == {table: at_head[table] for table in down}

    command.upgrade(_config(), "head")
    db.engine.dispose()
    assert _row_counts(list(down)) == down


def test_a_downgrade_that_would_drop_data_refuses_and_changes_nothing(app, backend):
    """The demo's data has waiting-list places, walk-ins, guest bookings...: going back below 0013 would drop
    them, so the downgrade refuses, naming them, and the database is as it was."""
    from expertbook import demo

    demo.load(app.config["DEMO_PASSWORD"])
    db.session.remove()
    # The revisions after 0013 hold nothing of the demo's (no calendar connected, no webhook): they go.
    command.downgrade(_config(), "0013_front_desk")
    db.engine.dispose()
    before, revision = _row_counts(), _current()
    assert revision == "0013_front_desk"
    with pytest.raises(DowngradeRefused, match=r"refusing to downgrade below 0013_front_desk: it would drop \d+ waiting-list places") as refused:
        command.downgrade(_config(), "0012_experts_more")
    assert "restore the backup" in str(refused.value)
    db.engine.dispose()
    assert (_row_counts(), _current()) == (before, revision)
    with db.engine.connect() as conn:
        assert "waitlist_entries" in inspect(conn).get_table_names()
    command.upgrade(_config(), "head")  # and up again, as the fixture leaves every database
    db.engine.dispose()
    assert _current() == _chain()[-1]
