"""Clinic tables."""
from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from expertbook.database import UTCDateTime, utcnow
from expertbook.extensions import db

if TYPE_CHECKING:
    from expertbook.auth.models import User


class Hospital(db.Model):
    """A hospital or clinic that publishes doctor slots; its staff are users with ``hospital_id`` set."""

    __tablename__ = "hospitals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(160))
    location: Mapped[str] = mapped_column(String(160), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    staff: Mapped[list[User]] = relationship(back_populates="hospital")
