"""Video tables: an expert's Zoom connection, its secrets encrypted at rest."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from expertbook.database import UTCDateTime, utcnow
from expertbook.extensions import db

CONNECTED = "connected"
RECONNECT_NEEDED = "reconnect_needed"
DEAUTHORIZED = "deauthorized"


class ZoomConnection(db.Model):
    """One expert's Zoom grant.

    ``secrets`` is a Fernet token holding the access token, refresh token, expiry, Zoom user id,
    email, account id and active flag (see :mod:`expertbook.video.crypto`). In plain text is only
    what queries need: whose it is, its status, a keyed hash of the Zoom user id and timestamps.
    """

    __tablename__ = "video_zoom_connections"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), unique=True)
    status: Mapped[str] = mapped_column(String(20), default=CONNECTED)
    secrets: Mapped[str | None] = mapped_column(Text)
    zoom_user_index: Mapped[str | None] = mapped_column(String(64), index=True)
    connected_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    refreshed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
