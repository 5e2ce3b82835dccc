"""The .ics file: read back by icalendar and by vobject; stable UID, TZID with VTIMEZONE,
SEQUENCE that grows on every change, METHOD:CANCEL once cancelled."""
from datetime import timedelta
from zoneinfo import ZoneInfo

import icalendar
import vobject

from expertbook.experts import service
from expertbook.experts.calendar import booking_ics
from tests.experts.helpers import book_kwargs, next_weekday_at
from tests.factories import login, make_expert, make_service, make_user


def _event(data: bytes):
    cal = icalendar.Calendar.from_ical(data)
    events = [c for c in cal.walk("VEVENT")]
    assert len(events) == 1
    return cal, events[0]


def test_ics_round_trips_through_icalendar_and_vobject(app):
    profile = make_expert("Ada Expert", timezone="America/New_York")
    svc = make_service(profile, "Strategy session", requires_acceptance=True, duration_min=45)
    customer = make_user("Cara Customer")
    start = next_weekday_at(9, 30, tz="America/New_York")  # on the 45-minute grid from 08:00
    booking = service.book(customer.id, svc.id, start, **book_kwargs(customer, notes="Bring the numbers"))

    data = booking_ics(booking)
    cal, event = _event(data)
    assert str(cal["METHOD"]) == "REQUEST"
    uid = str(event["UID"])
    assert event["DTSTART"].dt == start and event["DTEND"].dt == start + timedelta(minutes=45)
    assert event["DTSTART"].params["TZID"] == "America/New_York"
    assert [str(tz["TZID"]) for tz in cal.walk("VTIMEZONE")] == ["America/New_York"]
    assert (int(event["SEQUENCE"]), str(event["STATUS"])) == (0, "TENTATIVE")
    assert "Bring the numbers" in str(event["DESCRIPTION"])

    parsed = vobject.readOne(data.decode())
    vevent = parsed.vevent
    assert vevent.uid.value == uid
    assert vevent.dtstart.value == start.astimezone(ZoneInfo("America/New_York"))
    assert vevent.dtstart.value.utcoffset() == start.astimezone(ZoneInfo("America/New_York")).utcoffset()
    assert vevent.summary.value == "Strategy session with Ada Expert"

    accepted = service.respond(profile.user_id, booking.id, True)
    cal, event = _event(booking_ics(accepted))
    assert (str(event["UID"]), int(event["SEQUENCE"]), str(event["STATUS"]), str(cal["METHOD"])) == (uid, 1, "CONFIRMED", "REQUEST")

    cancelled = service.cancel(customer.id, booking.id, "Ill")
    data = booking_ics(cancelled)
    cal, event = _event(data)
    assert (str(event["UID"]), int(event["SEQUENCE"]), str(event["STATUS"]), str(cal["METHOD"])) == (uid, 2, "CANCELLED", "CANCEL")
    parsed = vobject.readOne(data.decode())
    assert parsed.method.value == "CANCEL" and parsed.vevent.sequence.value == "2" and parsed.vevent.status.value == "CANCELLED"


def test_ics_download_for_the_customer(client):
    profile = make_expert(handle="ada")
    svc = make_service(profile)
    customer = make_user()
    booking = service.book(customer.id, svc.id, next_weekday_at(10), **book_kwargs(customer))
    login(client, customer)
    response = client.get(f"/experts/bookings/{booking.id}/booking.ics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/calendar")
    assert "attachment" in response.headers["Content-Disposition"]
    _, event = _event(response.data)
    assert event["DTSTART"].dt == booking.start_at
