"""The clinic's clock: a hospital's zone, and how its times are labelled ("IST", "UTC+05:45").

A leaf module (no area imports), so the clinic's pages (through ``clinic.views``), its emails and its
calendar files all name a hospital's time the same way.
"""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import current_app


def zone(name: str | None) -> ZoneInfo:
    """The hospital's zone; an unknown name falls back to the configured default rather than failing a page."""
    try:
        return ZoneInfo(name or current_app.config["CLINIC_TIMEZONE"])
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(current_app.config["CLINIC_TIMEZONE"])


def zone_name(name: str | None) -> str:
    """The IANA name of the hospital's zone (the configured default for none or an unknown one): a TZID."""
    return zone(name).key


def zone_abbreviation(timezone: str | None, at: datetime) -> str:
    """The hospital zone's abbreviation at the instant ``at`` ("IST", "BST"); zones without a lettered one
    give their offset ("UTC+04", "UTC+05:45"), which cannot be mistaken for anything else."""
    local = at.astimezone(zone(timezone))
    name = local.tzname() or ""
    if name and name[0] not in "+-":
        return name
    minutes = int(local.utcoffset().total_seconds() // 60)
    sign, minutes = ("+" if minutes >= 0 else "-"), abs(minutes)
    return f"UTC{sign}{minutes // 60:02d}" + (f":{minutes % 60:02d}" if minutes % 60 else "")


def utc_offset_minutes(timezone: str | None, at: datetime) -> int:
    """The hospital zone's offset from UTC at ``at``, in minutes (app.js compares it with the browser's)."""
    return int(at.astimezone(zone(timezone)).utcoffset().total_seconds() // 60)
