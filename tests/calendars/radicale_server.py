"""A real Radicale CalDAV server for the calendar tests: a subprocess on a free loopback port, with its own
storage folder and one user (htpasswd, plain), which the test can stop and start again on the same port."""
from __future__ import annotations

import subprocess
import sys
from datetime import datetime
from pathlib import Path

import caldav

from tests.conftest import free_port, wait_until, _answers

USER = "expert"
PASSWORD = "app-password-1234"


class Radicale:
    """A Radicale server of one test. ``url`` is its root; :meth:`calendar` makes or finds a calendar."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        (directory / "users").write_text(f"{USER}:{PASSWORD}\n")
        (directory / "config").write_text(
            "[server]\n"
            f"hosts = 127.0.0.1:{self.port}\n"
            "[auth]\n"
            "type = htpasswd\n"
            f"htpasswd_filename = {directory / 'users'}\n"
            "htpasswd_encryption = plain\n"
            "delay = 0\n"
            "[storage]\n"
            f"filesystem_folder = {directory / 'collections'}\n"
            "[rights]\n"
            "type = owner_only\n"
            "[logging]\n"
            "level = warning\n"
        )
        self.process: subprocess.Popen | None = None

    def start(self) -> Radicale:
        log = open(self.directory / "radicale.log", "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "radicale", "--config", str(self.directory / "config")],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        log.close()
        wait_until(lambda: _answers(self.port), "Radicale answers", 30)
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None

    def client(self) -> caldav.DAVClient:
        return caldav.DAVClient(url=self.url, username=USER, password=PASSWORD, timeout=10, enable_rfc6764=False, require_tls=False)

    def calendar(self, name: str) -> caldav.Calendar:
        """The user's calendar ``name`` (made on first use)."""
        principal = self.client().principal()
        for found in principal.calendars():
            if found.get_display_name() == name:
                return found
        return principal.make_calendar(name=name, cal_id=name.lower().replace(" ", "-"))

    def add_event(self, calendar_name: str, uid: str, start: datetime | str, end: datetime | str, *, rrule: str = "",
                  transp: str = "", status: str = "", summary: str = "Busy", extra: str = "") -> None:
        """Put one VEVENT; times are aware datetimes (written in UTC) or raw property text (``"DTSTART;VALUE=DATE:20300101"``)."""
        def prop(name: str, value) -> str:
            if isinstance(value, str):
                return value
            return f"{name}:{value.astimezone().astimezone(__import__('datetime').timezone.utc).strftime('%Y%m%dT%H%M%SZ')}"

        lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//ExpertBook tests//EN", "BEGIN:VEVENT", f"UID:{uid}",
                 "DTSTAMP:20260101T000000Z", prop("DTSTART", start), prop("DTEND", end), f"SUMMARY:{summary}"]
        if rrule:
            lines.append(f"RRULE:{rrule}")
        if transp:
            lines.append(f"TRANSP:{transp}")
        if status:
            lines.append(f"STATUS:{status}")
        if extra:
            lines.extend(extra.strip().splitlines())
        lines += ["END:VEVENT", "END:VCALENDAR", ""]
        self.calendar(calendar_name).save_event("\r\n".join(lines))

    def events(self, calendar_name: str) -> list:
        """Every event object in the calendar (their ``.data`` is the iCalendar text)."""
        return list(self.calendar(calendar_name).events())
