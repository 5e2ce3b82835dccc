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
