"""What the migrations' downgrades use to keep data or refuse: a downgrade that would drop rows or values
refuses, naming them, before it changes anything (docs/operations.md, "Upgrading": roll back by restoring
the backup taken before the upgrade instead).
"""
from __future__ import annotations

from collections.abc import Mapping

import sqlalchemy as sa


class DowngradeRefused(RuntimeError):
    """A downgrade would lose data; nothing was changed."""


def refuse_if_data(revision: str, checks: Mapping[str, str]) -> None:
    """Refuse the downgrade below ``revision`` if any of ``checks`` finds rows.

    ``checks`` maps what would be lost ("waiting-list places") to a ``SELECT count(*) ...`` that counts it.
    Runs inside the migration's connection (``alembic.op``), before any change.
    """
    from alembic import op

    connection = op.get_bind()
    found = {}
    for what, query in checks.items():
        count = connection.execute(sa.text(query)).scalar() or 0
        if count:
            found[what] = count
    if found:
        listed = ", ".join(f"{count} {what}" for what, count in found.items())
        raise DowngradeRefused(
            f"refusing to downgrade below {revision}: it would drop {listed}. Nothing was changed. To go back to "
            f"the release before {revision}, restore the backup taken before upgrading (docs/operations.md, 'Upgrading')."
        )


def table_has_rows(table: str) -> str:
    """The count query of a whole table (for a downgrade that drops it)."""
    return f"SELECT count(*) FROM {table}"
