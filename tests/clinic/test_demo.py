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


def test_demo_shows_a_day_at_the_front_desk(app):
    """Walk-ins, a full session with the demo patient waiting, and a cancelled session: each once, however often loaded."""
    from expertbook.auth.models import User
    from expertbook.clinic.models import WaitlistEntry

    def state():
        db.session.rollback()
        walk_ins = db.session.scalar(select(func.count()).select_from(Appointment).where(Appointment.walk_in.is_(True)))
        waiting = db.session.scalars(select(WaitlistEntry).where(WaitlistEntry.status == WaitlistEntry.WAITING)).all()
        cancelled = db.session.scalars(select(Slot).where(Slot.cancelled_at.is_not(None))).all()
        return walk_ins, waiting, cancelled

    demo.load(app.config["DEMO_PASSWORD"])
    walk_ins, waiting, cancelled = state()
    assert walk_ins >= 2
    patient = db.session.scalar(select(User).where(User.email == demo.PATIENT[1]))
    assert [entry.user_id for entry in waiting] == [patient.id]
    full = db.session.get(Slot, waiting[0].slot_id)
    assert full.booked_count == full.capacity
    assert len(cancelled) == 1 and cancelled[0].cancel_reason
    # The patient had a place there: it is cancelled with the session and waits to be moved.
    assert db.session.scalar(
        select(func.count()).select_from(Appointment).where(
            Appointment.slot_id == cancelled[0].id, Appointment.user_id == patient.id, Appointment.status == Appointment.CANCELLED
        )
    ) >= 1
    demo.load(app.config["DEMO_PASSWORD"])
    again = state()
    assert again[0] == walk_ins and len(again[1]) == 1 and [s.id for s in again[2]] == [cancelled[0].id]
