"""Database plumbing shared by every area: the declarative base, SQLite tuning and the unit of work.

Services write through :func:`transaction`; it is the one place that commits, but for a write that is
one statement on PostgreSQL (:func:`single_statement`, the clinic booking). On SQLite it opens
the write transaction with ``BEGIN IMMEDIATE`` so concurrent writers queue on the busy timeout
instead of failing half-way; on PostgreSQL the services use conditional updates and row locks,
and a write continues the request's read transaction (READ COMMITTED sees fresh data anyway).
"""
from __future__ import annotations

import logging
import select
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import DateTime, MetaData, event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

log = logging.getLogger(__name__)

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

WRITE_OPTION = "expertbook_write"


class Base(DeclarativeBase):
    """Declarative base with a naming convention, so migrations name constraints the same everywhere."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


# Flask-SQLAlchemy's object, bound in ``create_app``. It lives here, with the transactions that use it;
# ``expertbook.extensions`` lists it with the other extension objects.
db = SQLAlchemy(model_class=Base)


class UTCDateTime(TypeDecorator):
    """A timestamp stored in UTC that always reads back timezone-aware, on SQLite too."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given where an aware one is required")
        value = value.astimezone(UTC)
        # SQLite has no zone-aware type; store naive UTC so text ordering stays chronological.
        return value if dialect.name == "postgresql" else value.replace(tzinfo=None)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)


def configure_engine(engine: Engine, busy_timeout_ms: int) -> None:
    """Tune the engine: on SQLite WAL, busy timeout, foreign keys and explicit BEGIN control; on
    PostgreSQL a check of each pooled connection as it is taken from the pool."""
    if engine.dialect.name == "postgresql":
        event.listen(engine, "checkout", _discard_if_closed_by_server)
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):  # pragma: no cover - exercised through every SQLite test
        # Take transaction control away from pysqlite so BEGIN is ours to choose.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        # A deferred BEGIN that later writes can fail with SQLITE_BUSY without waiting;
        # IMMEDIATE takes the write lock up front and so honours the busy timeout.
        if conn.get_execution_options().get(WRITE_OPTION):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")


def _discard_if_closed_by_server(dbapi_connection, _record, _proxy) -> None:
    """Refuse a pooled PostgreSQL connection the server has closed (restart, idle timeout, terminated
    backend), without the round trip of a pre-ping: an idle connection has nothing to read, so a
    readable socket means the server said goodbye (an error message, then EOF). The pool then
    replaces it with a fresh one. A connection that dies between this check and its use still fails
    that one request; SQLAlchemy then invalidates the pool, so the next ones reconnect."""
    if dbapi_connection.closed or dbapi_connection.broken:
        raise DisconnectionError("connection closed")
    try:
        readable, _, _ = select.select([dbapi_connection.fileno()], [], [], 0)
    except (OSError, ValueError):
        raise DisconnectionError("connection unusable") from None
    if readable:
        raise DisconnectionError("the server closed the connection")


@contextmanager
def transaction() -> Iterator:
    """Run the enclosed work as one write transaction and commit it.

    Nested use joins the outer transaction. Callbacks registered with :func:`after_commit`
    run only once the outermost transaction has committed, and never on rollback.
    """
    session = db.session()
    if session.info.get("uow_depth"):
        session.info["uow_depth"] += 1
        try:
            yield session
        finally:
            session.info["uow_depth"] -= 1
        return

    continuing = False
    if session.in_transaction():
        if session.new or session.dirty or session.deleted:
            raise RuntimeError("unflushed changes outside a service transaction")
        if session.get_bind().dialect.name == "sqlite":
            # End the read transaction the request opened: only a transaction that starts with
            # BEGIN IMMEDIATE waits for SQLite's write lock instead of failing half-way.
            session.rollback()
        else:
            # PostgreSQL reads committed data afresh at every statement (READ COMMITTED), so the
            # write may continue the request's transaction, saving a ROLLBACK and a BEGIN; objects
            # read earlier are expired so the service sees them as they are now, as after a rollback.
            session.expire_all()
            continuing = True
    session.info["uow_depth"] = 1
    session.info["after_commit"] = []
    try:
        if not continuing:
            session.connection(execution_options={WRITE_OPTION: True})
        yield session
        _refuse_to_commit_an_aborted_transaction(session)
        session.commit()
    except BaseException:
        session.rollback()
        session.info["after_commit"] = []
        raise
    finally:
        session.info["uow_depth"] = 0
    callbacks, session.info["after_commit"] = session.info["after_commit"], []
    for callback in callbacks:
        try:
            callback()
        except Exception:  # a follow-up must never undo or hide a committed change
            log.exception("after-commit callback %r failed", callback)


class AbortedTransaction(RuntimeError):
    """A statement failed inside a transaction whose caller went on as if it had not."""


def _refuse_to_commit_an_aborted_transaction(session) -> None:
    # PostgreSQL answers the COMMIT of a transaction that a failed statement aborted with a ROLLBACK,
    # and psycopg raises nothing: a caller that swallowed the error would report a change that never
    # happened. Failing loudly here rolls back visibly instead. (Writes that may fail without undoing
    # the caller's change belong in a savepoint, as queue_email and queue_composed do.)
    connection = session.connection()
    if connection.dialect.driver != "psycopg":
        return
    from psycopg.pq import TransactionStatus

    if connection.connection.driver_connection.info.transaction_status == TransactionStatus.INERROR:
        raise AbortedTransaction("a statement failed inside this transaction, so none of it was committed")


@contextmanager
def _autocommit_connection() -> Iterator[Connection]:
    with db.engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            connection.execution_options(isolation_level="AUTOCOMMIT")
        yield connection


@contextmanager
def autocommit_reads() -> Iterator[Connection]:
    """A pooled connection outside the request's session for a view whose only database work is one
    or two independent SELECTs (a polled fragment). On PostgreSQL it is in autocommit mode: no BEGIN
    and no ROLLBACK round trips around the reads. (SQLite has no round trips to save, and switching a
    pysqlite connection's isolation level back and forth would undo :func:`configure_engine`'s BEGIN
    control, so there it is a plain connection.) Never write through it; writes go through
    :func:`transaction` or, for a write that is one statement on PostgreSQL, :func:`single_statement`."""
    with _autocommit_connection() as connection:
        yield connection


@contextmanager
def single_statement() -> Iterator[Connection]:
    """PostgreSQL: a pooled connection in autocommit mode for a write that is exactly one statement.

    PostgreSQL runs a lone statement atomically (data-modifying CTEs included: all of it or none of
    it), so it needs no BEGIN and no COMMIT, two round trips fewer than :func:`transaction`. The
    statement is committed when ``execute`` returns: follow-ups run straight after it, not through
    :func:`after_commit`, and nothing else may be written through the connection. Not for SQLite,
    whose writes need :func:`transaction`'s ``BEGIN IMMEDIATE``.
    """
    with _autocommit_connection() as connection:
        if connection.dialect.name != "postgresql":
            raise RuntimeError("single_statement() is for PostgreSQL; write through transaction() here")
        yield connection


def after_commit(callback: Callable[[], None]) -> None:
    """Run ``callback`` after the current service transaction commits (at once if there is none)."""
    if db.session.info.get("uow_depth"):
        db.session.info["after_commit"].append(callback)
    else:
        callback()
