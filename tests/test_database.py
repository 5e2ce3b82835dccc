"""The unit of work: concurrent writers queue instead of failing, and follow-ups run only after commit."""
import threading

import pytest
from sqlalchemy import func, select

from expertbook.auth import service as accounts
from expertbook.auth.models import User
from expertbook.database import after_commit, transaction
from expertbook.extensions import db
from tests.factories import PASSWORD


def test_concurrent_writers_all_succeed(app):
    errors: list[BaseException] = []

    def register(i: int) -> None:
        with app.app_context():
            try:
                accounts.register_user(f"U{i}", f"u{i}@example.com", PASSWORD)
            except BaseException as exc:  # collected and asserted below
                errors.append(exc)

    threads = [threading.Thread(target=register, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert db.session.scalar(select(func.count()).select_from(User)) == 12


def test_after_commit_runs_only_after_a_successful_commit(app):
    ran: list[str] = []
    with transaction():
        after_commit(lambda: ran.append("committed"))
        assert ran == []
    assert ran == ["committed"]
    with pytest.raises(RuntimeError):
        with transaction():
            after_commit(lambda: ran.append("rolled back"))
            raise RuntimeError("boom")
    assert ran == ["committed"]


def test_failing_after_commit_callback_does_not_undo_the_write(app):
    def fail():
        raise ConnectionError("queue down")

    with transaction() as session:
        session.add(User(name="A", email="a@example.com", password_hash="x"))
        after_commit(fail)
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(User)) == 1


def test_a_pooled_connection_the_server_closed_is_replaced_before_use(app, backend):
    """Without a pre-ping round trip: the checkout check sees the closed socket and the pool reconnects."""
    if backend != "postgresql":
        pytest.skip("PostgreSQL closes connections from the server side; SQLite has none")
    import time

    from sqlalchemy import text

    db.session.rollback()
    first, second = db.engine.connect(), db.engine.connect()
    doomed = first.execute(text("SELECT pg_backend_pid()")).scalar()
    first.close()  # back to the pool, idle
    second.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": doomed})
    second.close()
    time.sleep(0.3)
    # Take every pooled connection at once: none may be the terminated one, and none may fail.
    connections = [db.engine.connect() for _ in range(3)]
    try:
        pids = [c.execute(text("SELECT pg_backend_pid()")).scalar() for c in connections]
    finally:
        for connection in connections:
            connection.close()
    assert doomed not in pids


def test_transaction_continues_a_postgresql_read_but_restarts_one_on_sqlite(app, backend):
    """A write after a read in the same request sees committed data on both databases."""
    user = accounts.register_user("Reader", "reader@example.com", PASSWORD)
    assert db.session.scalar(select(User.name).where(User.id == user.id)) == "Reader"  # opens a read transaction
    with transaction():
        db.session.get(User, user.id).name = "Writer"
    assert db.session.scalar(select(User.name).where(User.id == user.id)) == "Writer"


def test_autocommit_reads_leave_pooled_connections_as_configured(app, backend):
    """The fragment's autocommit connection goes back to the pool in the mode every other user expects."""
    from sqlalchemy import text

    from expertbook.database import autocommit_reads

    db.session.rollback()
    with autocommit_reads() as connection:
        assert connection.execute(text("SELECT 1")).scalar() == 1
    with db.engine.connect() as connection:
        raw = connection.connection.dbapi_connection
        if backend == "sqlite":
            assert raw.isolation_level is None  # BEGIN stays ours to choose (configure_engine)
        else:
            assert raw.autocommit is False


def test_a_swallowed_error_inside_a_transaction_fails_the_commit_instead_of_losing_the_change(app, backend):
    from sqlalchemy import insert

    from expertbook.database import AbortedTransaction
    from tests.factories import make_user

    user = make_user(name="Kept")
    users = User.__table__
    if backend == "sqlite":
        pytest.skip("SQLite has no aborted-transaction state: a failed statement leaves the transaction usable")
    with pytest.raises(AbortedTransaction):
        with transaction() as session:
            session.execute(users.update().where(users.c.id == user.id).values(name="Changed"))
            try:
                session.connection().execute(insert(users).values(name="Dup", email=user.email, password_hash="x"))
            except Exception:
                pass  # a caller that goes on as if nothing happened
    db.session.rollback()
    assert db.session.get(User, user.id).name == "Kept"


def test_single_statement_commits_one_statement_on_postgresql_and_refuses_sqlite(app, backend):
    from expertbook.database import single_statement
    from tests.factories import make_user

    user = make_user(name="Before")
    update = User.__table__.update().where(User.__table__.c.id == user.id).values(name="After")
    if backend == "sqlite":
        with pytest.raises(RuntimeError, match="transaction"):
            with single_statement() as connection:
                connection.execute(update)
        return
    with single_statement() as connection:
        connection.execute(update)
    # Committed as soon as it ran: another connection sees it, with no COMMIT issued.
    with db.engine.connect() as other:
        assert other.scalar(select(User.__table__.c.name).where(User.__table__.c.id == user.id)) == "After"
