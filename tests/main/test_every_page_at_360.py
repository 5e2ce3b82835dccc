"""Every page, at 360 px wide (issue 14 and the project's rule): no sideways scrolling, no console error or
CSP violation, and nothing serious or critical for axe-core. Whoever adds a page adds it here."""
from __future__ import annotations

import pytest

from expertbook.clinic import service as clinic
from expertbook.experts import service as experts
from tests.browser import PHONE, audit, log_in
from tests.experts.helpers import book_kwargs, next_weekday_at
from tests.factories import make_admin, make_appointment, make_expert, make_hospital, make_service, make_slot, make_staff, make_user

pytestmark = pytest.mark.browser


def test_every_page_fits_a_360px_phone(live_server, browser_page):
    hospital = make_hospital("City General Hospital with a rather long name", "Chennai")
    staff = make_staff(hospital, email="desk@example.com")
    slot = make_slot(hospital, capacity=5)
    patient = make_user("Asha Verma", email="asha@example.com")
    mine = make_appointment(slot, patient, patient_name="Asha Verma")
    make_appointment(slot, patient, patient_name="Asha's Mother", status="cancelled")
    clinic.call_next(slot.id, hospital.id)
    expert = make_expert("Ada Expert", handle="ada", timezone="Asia/Kolkata", email="ada@example.com")
    svc = make_service(expert, "An hour on your architecture and hiring", slug="consult")
    booking = experts.book(patient.id, svc.id, next_weekday_at(10, tz="Asia/Kolkata"), **book_kwargs(patient))
    make_admin(email="admin@example.com")

    visits = {
        None: ["/", "/login", "/register", "/clinic/search", f"/clinic/slots/{slot.id}", f"/clinic/slots/{slot.id}/now-serving",
               "/clinic/register-hospital", "/experts", "/expert/ada", "/expert/ada/consult", "/no-such-page"],
        "asha@example.com": ["/profile", "/clinic/search", f"/clinic/slots/{slot.id}", "/clinic/my-appointments",
                             f"/clinic/appointments/{mine.id}", f"/clinic/appointments/{mine.id}/cancel", "/my-bookings",
                             f"/experts/bookings/{booking.id}"],
        "desk@example.com": ["/clinic/staff", "/clinic/staff/slots", "/clinic/staff/slots/new", f"/clinic/staff/slots/{slot.id}"],
        "ada@example.com": ["/expert-dashboard", "/experts/settings/services", "/experts/settings/services/new",
                            f"/experts/settings/services/{svc.id}", "/experts/settings/hours", "/experts/settings/profile",
                            f"/experts/bookings/{booking.id}", "/video/settings"],
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
