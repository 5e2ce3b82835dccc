"""The migrations and the models describe the same schema, on each database."""
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from expertbook.extensions import db


def test_models_and_migrations_agree(app):
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, db.metadata)
    assert diff == [], f"models and migrations disagree; run 'flask db migrate': {diff}"
