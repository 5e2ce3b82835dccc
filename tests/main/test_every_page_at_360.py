"""Every page, at 360 px wide (issue 14 and the project's rule): no sideways scrolling, no console error or
CSP violation, and nothing serious or critical for axe-core. Whoever adds a page adds it here."""
from __future__ import annotations

import pytest

from datetime import timedelta

from expertbook.auth import tokens
from expertbook.auth.models import RESET, VERIFY
from expertbook.clinic import links
from expertbook.clinic import booking, moves, queue, sessions, waitlist
from expertbook.database import transaction
from expertbook.experts import service as experts
from tests.browser import PHONE, audit, log_in
from tests.experts.helpers import book_kwargs, next_weekday_at
from tests.factories import (
    make_admin,
    make_appointment,
    make_doctor,
    make_expert,
    make_hospital,
    make_service,
    make_slot,
    make_staff,
    make_user,
    make_webhook,
)

pytestmark = pytest.mark.browser


def test_every_page_fits_a_360px_phone(live_server, browser_page):
    hospital = make_hospital("City General Hospital with a rather long name", "Chennai")
    staff = make_staff(hospital, email="desk@example.com")
    slot = make_slot(hospital, capacity=5)
    patient = make_user("Asha Verma", email="asha@example.com")
    mine = make_appointment(slot, patient, patient_name="Asha Verma")
    make_appointment(slot, patient, patient_name="Asha's Mother", status="cancelled")
    queue.call_next(slot.id, hospital.id)
    expert = make_expert("Ada Expert", handle="ada", timezone="Asia/Kolkata", email="ada@example.com")
    svc = make_service(expert, "An hour on your architecture and hiring", slug="consult")
    made = experts.book(patient.id, svc.id, next_weekday_at(10, tz="Asia/Kolkata"), **book_kwargs(patient))
    make_admin(email="admin@example.com")
    # Webhooks (issue 24): the hospital's and the expert's, each with a delivery log.
    hook = make_webhook(staff)
    expert_hook = make_webhook(expert.user)

    # The front desk (issue 15): a walk-in's slip, a full session with its waiting list, a session the
    # hospital cancelled (the patient's move page, a walk-in's move link before and after moving), doctors.
    walk_in = booking.walk_in(slot.id, hospital.id, "Ravi Kumar Subramanian", "9123456780")
    full = make_slot(hospital, make_doctor(hospital, "Dr. Iyer", "Cardiology"), capacity=1, days_ahead=2)
    make_appointment(full, make_user(), patient_name="Someone Else")
    waitlist.join_waitlist(full.id, patient.id, "Asha Verma", "9876543210")
    called_off = make_slot(hospital, slot.doctor, capacity=4, days_ahead=3)
    moving = make_appointment(called_off, patient, patient_name="Asha Verma")
    stays = booking.walk_in(called_off.id, hospital.id, "Walk In One", "9123456781")
    movers = booking.walk_in(called_off.id, hospital.id, "Walk In Two", "9123456782")
    sessions.cancel_session(called_off.id, hospital.id, "The doctor is away")
    moves.move_appointment(movers.appointment_id, slot.id, None)
    # The experts (issue 16): a guest's manage link, rescheduling, the calendar feed.
    guest = experts.book(None, svc.id, next_weekday_at(11, tz="Asia/Kolkata"), name="Gita Guest", email="gita@example.com",
                         phone="+44 20 7946 0001", customer_timezone="Europe/London")
    manage = experts.manage_token(guest)
    # Calendars (issue 24): a CalDAV connection that broke, with its calendars and last error, and the forms.
    from expertbook import crypto
    from expertbook.calendars.models import CalendarConnection, RemoteCalendar
    from expertbook.database import utcnow
    from expertbook.extensions import db

    with transaction():
        connection = CalendarConnection(
            user_id=expert.user_id, kind="caldav", status="unreachable", failing_since=utcnow(), last_ok_at=utcnow(),
            last_error="the server could not be reached (reading busy times): ConnectionError",
            secrets=crypto.encrypt({"url": "https://caldav.example.org/dav/", "username": "ada.lovelace.long.username", "password": "x"}),
        )
        db.session.add(connection)
        db.session.flush()
        for name, write in (("Work", False), ("A personal calendar with a rather long name", False), ("ExpertBook bookings", True)):
            db.session.add(RemoteCalendar(connection_id=connection.id, remote_id=f"https://caldav.example.org/dav/{name}/", name=name,
                                          check_conflicts=True, write_bookings=write))
    # Accounts: a live password reset link.
    resetting = make_user("Reza Reset", email="reza@example.com")
    verifying = make_user("Vera Verify", email="vera@example.com")
    with transaction():
        reset = tokens.issue(resetting, RESET, timedelta(hours=1))
        verify = tokens.issue(verifying, VERIFY, timedelta(days=1))

    visits = {
        None: ["/", "/login", "/register", "/clinic/search", f"/clinic/slots/{slot.id}", f"/clinic/slots/{slot.id}/now-serving",
               f"/clinic/slots/{full.id}", "/clinic/register-hospital", "/experts", "/expert/ada", "/expert/ada/consult", "/no-such-page",
               f"/clinic/move/{links.move_token(stays.appointment_id)}", f"/clinic/move/{links.move_token(movers.appointment_id)}",
               f"/experts/manage/{manage}", f"/experts/manage/{manage}/reschedule", "/forgot-password", f"/reset-password/{reset}",
               "/check-email", f"/verify-email/{verify}"],
        "asha@example.com": ["/profile", "/clinic/search", f"/clinic/slots/{slot.id}", f"/clinic/slots/{full.id}", "/clinic/my-appointments",
                             f"/clinic/appointments/{mine.id}", f"/clinic/appointments/{mine.id}/cancel", f"/clinic/appointments/{mine.id}/move",
                             f"/clinic/appointments/{moving.id}", f"/clinic/appointments/{moving.id}/move", "/my-bookings",
                             f"/experts/bookings/{made.id}", f"/experts/bookings/{made.id}/reschedule",
                             "/profile/security", "/profile/delete"],
        "desk@example.com": ["/clinic/staff", "/clinic/staff/slots", "/clinic/staff/slots/new", f"/clinic/staff/slots/{slot.id}",
                             f"/clinic/staff/slots/{full.id}", f"/clinic/staff/slots/{called_off.id}",
                             f"/clinic/staff/appointments/{walk_in.appointment_id}/slip", "/clinic/staff/doctors",
                             f"/clinic/staff/doctors/{slot.doctor.id}", "/webhooks", "/webhooks/new", f"/webhooks/{hook.id}",
                             f"/webhooks/{hook.id}/edit"],
        "ada@example.com": ["/expert-dashboard", "/experts/settings/services", "/experts/settings/services/new",
                            f"/experts/settings/services/{svc.id}", "/experts/settings/hours", "/experts/settings/profile",
                            f"/experts/bookings/{made.id}", f"/experts/bookings/{guest.id}", f"/experts/bookings/{made.id}/reschedule",
                            "/experts/calendar-feed", "/video/settings", "/calendars/", "/webhooks", f"/webhooks/{expert_hook.id}"],
        "admin@example.com": ["/notifications"],
    }
    checked = []
    for email, paths in visits.items():
        # The 404 page's own request is an intended error, which Chromium logs.
        page = browser_page(viewport=PHONE, also_expected=r"status of 404" if email is None else None)
        if email:
            log_in(page, live_server, email)
        for path in paths:
            page.goto(live_server + path)
            audit(page, f"{path} ({email or 'anonymous'})")
            checked.append(path)
    assert len(checked) == sum(len(p) for p in visits.values())

    # The answer to adding a webhook: its signing secret, shown once (a POST's page, not an address to visit).
    page = browser_page(viewport=PHONE)
    log_in(page, live_server, "desk@example.com")
    page.goto(live_server + "/webhooks/new")
    page.get_by_label("Endpoint URL").fill("https://93.184.215.14/second-system")
    page.get_by_label("appointment.booked", exact=False).check()
    page.get_by_role("button", name="Add the webhook").click()
    page.locator("#secret-value").wait_for()
    audit(page, "the new webhook's secret (desk@example.com)")
