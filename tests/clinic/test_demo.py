"""The demo's hospital: doctors of several specializations, a week of slots, some bookings; loading twice adds nothing."""
from sqlalchemy import func, select

from expertbook import demo
from expertbook.clinic.models import Appointment, Doctor, Slot
from expertbook.extensions import db


def _totals():
    db.session.rollback()
    return (
        db.session.scalar(select(func.count()).select_from(Doctor)),
        db.session.scalar(select(func.count(func.distinct(Doctor.specialization)))),
        db.session.scalar(select(func.count(func.distinct(Slot.date)))),
        db.session.scalar(select(func.count()).select_from(Appointment)),
    )


def test_demo_clinic_data(app):
    demo.load(app.config["DEMO_PASSWORD"])
    doctors, specializations, dates, appointments = first = _totals()
    assert doctors == 4 and specializations == 4
    assert dates >= 6  # a week from today (today's sessions may be over already)
    assert appointments > 0
    demo.load(app.config["DEMO_PASSWORD"])
    assert _totals() == first
