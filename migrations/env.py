import logging
from logging.config import fileConfig

import sqlalchemy as sa

from flask import current_app

from alembic import context

# this is the Alembic Config object, which provides
# access to the values within the .ini file in use.
config = context.config

# Interpret the config file for Python logging.
# This line sets up loggers basically.
# Through the app's own handler (expertbook.observability: LOG_FORMAT, every line redacted) when the app
# set one up (flask db upgrade); alembic.ini's plain console handler otherwise.
if not logging.getLogger().handlers:
    fileConfig(config.config_file_name, disable_existing_loggers=False)
logger = logging.getLogger('alembic.env')


def get_engine():
    try:
        # this works with Flask-SQLAlchemy<3 and Alchemical
        return current_app.extensions['migrate'].db.engine
    except (TypeError, AttributeError):
        # this works with Flask-SQLAlchemy>=3
        return current_app.extensions['migrate'].db.engine


def get_engine_url():
    try:
        return get_engine().url.render_as_string(hide_password=False).replace(
            '%', '%%')
    except AttributeError:
        return str(get_engine().url).replace('%', '%%')


# add your model's MetaData object here
# for 'autogenerate' support
# from myapp import mymodel
# target_metadata = mymodel.Base.metadata
config.set_main_option('sqlalchemy.url', get_engine_url())
target_db = current_app.extensions['migrate'].db

# other values from the config, defined by the needs of env.py,
# can be acquired:
# my_important_option = config.get_main_option("my_important_option")
# ... etc.


def get_metadata():
    if hasattr(target_db, 'metadatas'):
        return target_db.metadatas[None]
    return target_db.metadata


def run_migrations_offline():
    """Run migrations in 'offline' mode.

    This configures the context with just a URL
    and not an Engine, though an Engine is acceptable
    here as well.  By skipping the Engine creation
    we don't even need a DBAPI to be available.

    Calls to context.execute() here emit the given string to the
    script output.

    """
    url = config.get_main_option("sqlalchemy.url")
    context.configure(
        url=url, target_metadata=get_metadata(), literal_binds=True
    )

    with context.begin_transaction():
        context.run_migrations()


# Revision ids that were on main under another name before being renumbered (a database upgraded then still
# says the old id, which Alembic cannot locate). Each maps to its id now and to the migrations that were put
# before it when it was renumbered, which such a database never ran. tests/test_migrations.py pins the ids.
RENAMED_REVISIONS = {
    '0009_account_control': ('0010_account_control', ('0009_email_templates_by_area',)),
    '0010_meeting_create_marker': ('0011_meeting_create_marker', ()),
}


def adopt_renamed_revision(connection):
    """If the database is stamped with an old id, run what it missed and stamp it with the id of now."""
    import importlib.util
    from pathlib import Path

    from alembic.migration import MigrationContext
    from alembic.operations import Operations

    # Whatever this reads or writes is committed (or rolled back) here: Alembic's own transaction must
    # find the connection idle, or it would join this one and never commit.
    try:
        if not sa.inspect(connection).has_table('alembic_version'):
            return
        current = connection.exec_driver_sql('SELECT version_num FROM alembic_version').scalars().all()
        if len(current) != 1 or current[0] not in RENAMED_REVISIONS:
            return
        old = current[0]
        new, missed = RENAMED_REVISIONS[old]
        for revision in missed:
            path = Path(__file__).parent / 'versions' / f'{revision}.py'
            spec = importlib.util.spec_from_file_location(f'_missed_{revision}', path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            with Operations.context(MigrationContext.configure(connection)):
                module.upgrade()
        connection.execute(sa.text('UPDATE alembic_version SET version_num = :new'), {'new': new})
        logger.info('The database said revision %s, renamed %s since; ran %s and stamped it %s.',
                    old, new, ', '.join(missed) or 'nothing', new)
    except BaseException:
        connection.rollback()
        raise
    finally:
        if connection.in_transaction():
            connection.commit()


def run_migrations_online():
    """Run migrations in 'online' mode.

    In this scenario we need to create an Engine
    and associate a connection with the context.

    """

    # this callback is used to prevent an auto-migration from being generated
    # when there are no changes to the schema
    # reference: http://alembic.zzzcomputing.com/en/latest/cookbook.html
    def process_revision_directives(context, revision, directives):
        if getattr(config.cmd_opts, 'autogenerate', False):
            script = directives[0]
            if script.upgrade_ops.is_empty():
                directives[:] = []
                logger.info('No changes in schema detected.')

    conf_args = current_app.extensions['migrate'].configure_args
    if conf_args.get("process_revision_directives") is None:
        conf_args["process_revision_directives"] = process_revision_directives

    connectable = get_engine()

    with connectable.connect() as connection:
        sqlite = connection.dialect.name == 'sqlite'
        if sqlite:
            # SQLite changes a table by rebuilding it (create, copy, drop the old one, rename). With
            # foreign keys enforced, dropping the old table fires every ON DELETE CASCADE that points at
            # it and empties the tables that reference it (a rebuilt `bookings` took its meetings with
            # it). The pragma only takes effect outside a transaction, hence on the driver's connection
            # before anything begins; the keys are checked as a whole before the migration commits.
            connection.connection.driver_connection.execute('PRAGMA foreign_keys = OFF')
        try:
            adopt_renamed_revision(connection)
            context.configure(
                connection=connection,
                target_metadata=get_metadata(),
                **conf_args
            )

            with context.begin_transaction():
                context.run_migrations()
                if sqlite:
                    broken = connection.exec_driver_sql('PRAGMA foreign_key_check').fetchall()
                    if broken:
                        raise RuntimeError(f'the migration left rows whose foreign keys point nowhere: {broken[:10]}')
        finally:
            if sqlite:
                connection.connection.driver_connection.execute('PRAGMA foreign_keys = ON')


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
