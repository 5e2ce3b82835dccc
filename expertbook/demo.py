"""Demo data, loaded by ``flask demo``. Running it again changes nothing that is already there."""
from __future__ import annotations

from sqlalchemy import select

from expertbook.auth import service as accounts
from expertbook.auth.models import User
from expertbook.extensions import db

PATIENT = ("Priya Raman", "patient@demo.expertbook.example")
HOSPITAL = ("City General Hospital", "Chennai", "Anil Kumar", "staff@demo.expertbook.example")
ADMIN = ("Site Admin", "admin@demo.expertbook.example")


def _user(email: str) -> User | None:
    return db.session.scalar(select(User).where(User.email == email))


def load(password: str) -> list[tuple[str, str]]:
    """Create the demo accounts (and, as areas add them, their data); return (role, email) pairs."""
    # Demo accounts are verified: they get no verification email, and their pages are published.
    if _user(PATIENT[1]) is None:
        accounts.register_user(PATIENT[0], PATIENT[1], password, verified=True)
    if _user(HOSPITAL[3]) is None:
        from expertbook.clinic import hospitals

        hospitals.register_hospital(HOSPITAL[0], HOSPITAL[1], HOSPITAL[2], HOSPITAL[3], password, verified=True)
    load_clinic()
    logins = [("patient / customer", PATIENT[1]), ("hospital staff admin", HOSPITAL[3])]
    logins += _notifications(password)
    logins += _experts(password)
    return logins


def summary() -> dict[str, int]:
    """What the database holds that the demo shows: counts for the one-line summary ``flask demo`` prints."""
    from sqlalchemy import func

    from expertbook.clinic.models import Appointment, Slot
    from expertbook.experts.models import Booking, ExpertProfile
    from expertbook.notifications.models import OutboxEmail

    def count(model) -> int:
        return db.session.scalar(select(func.count()).select_from(model)) or 0

    return {
        "sessions": count(Slot),
        "appointments": count(Appointment),
        "experts": count(ExpertProfile),
        "bookings": count(Booking),
        "emails": count(OutboxEmail),
    }


def _notifications(password: str) -> list[tuple[str, str]]:
    """A site administrator, who sees the email outbox at /notifications."""
    if _user(ADMIN[1]) is None:
        accounts.register_user(ADMIN[0], ADMIN[1], password, verified=True)
    accounts.make_admin(ADMIN[1])
    return [("site admin (emails)", ADMIN[1])]


EXPERTS = (
    {
        "name": "Sivakumar Ganesh",
        "email": "expert@demo.expertbook.example",
        "handle": "sivakumar",
        "headline": "Technology and business consulting",
        "bio": "Twenty years of building software teams. I help founders choose technology and plan their first hires.",
        "timezone": "Asia/Kolkata",
        "services": [
            {"title": "Technology Consulting Session", "duration_min": 60, "price": "100", "currency": "USD", "location_kind": "video",
             "description": "An hour on your architecture, hiring or roadmap.", "buffer_after_min": 15, "min_notice_min": 120},
            {"title": "Quick Call", "duration_min": 30, "price": "40", "currency": "USD", "location_kind": "phone",
             "location_detail": "+91 44 2345 6789", "description": "A short call to see if we are a fit."},
        ],
    },
    {
        "name": "Dr. Meera Iyer",
        "email": "expert2@demo.expertbook.example",
        "handle": "meera-iyer",
        "headline": "Nutrition and wellbeing coach",
        "bio": "Registered dietitian. Consultations are confirmed by me personally.",
        "timezone": "Europe/London",
        "services": [
            {"title": "Nutrition Consultation", "duration_min": 45, "price": "60", "currency": "GBP", "location_kind": "in_person",
             "location_detail": "12 Harley Street, London", "requires_acceptance": True, "buffer_before_min": 15, "min_notice_min": 1440},
            {"title": "Follow-up (video)", "duration_min": 20, "price": "25", "currency": "GBP", "location_kind": "video", "requires_acceptance": True},
        ],
    },
)


def _experts(password: str) -> list[tuple[str, str]]:
    """Two experts with services (one set needing acceptance), hours, a day off, and bookings by the demo patient."""
    from datetime import datetime, time, timedelta
    from zoneinfo import ZoneInfo

    from expertbook.experts import service as experts

    logins = []
    for spec in EXPERTS:
        user = _user(spec["email"]) or accounts.register_user(spec["name"], spec["email"], password, verified=True)
        if experts.profile_of(user.id) is None:
            experts.create_profile(user.id, spec["name"], spec["headline"], spec["bio"], spec["handle"], spec["timezone"])
            if spec["handle"] == "meera-iyer":
                # Split days and a Saturday morning, plus a day off next week.
                week = {d: [(time(9), time(12, 30)), (time(14), time(18))] for d in range(5)}
                week[5] = [(time(9), time(12))]
                experts.set_weekly_hours(user.id, week)
                off = datetime.now(ZoneInfo(spec["timezone"])).date() + timedelta(days=9)
                experts.set_override(user.id, off, [])
        existing = {s.slug for s in experts.own_services(user.id)}
        for svc in spec["services"]:
            if experts.slugify(svc["title"]) not in existing:
                experts.create_service(user.id, svc)
        logins.append(("expert", spec["email"]))

    patient = _user(PATIENT[1])
    for spec in EXPERTS:
        profile = experts.profile_of(_user(spec["email"]).id)
        services = experts.visible_services(profile.id)
        for index, svc in enumerate(services):
            key = f"demo-{spec['handle']}-{index}"
            if _has_key(patient.id, key):
                continue
            times = experts.next_times([svc], 4 + 9 * index)  # spread over a few days
            if not times:
                continue
            experts.book(
                patient.id, svc.id, times[-1][0], name=patient.name, email=patient.email, phone="+91 98765 43210",
                notes="Demo booking", customer_timezone="Asia/Kolkata", idempotency_key=key,
            )
    return logins


def _has_key(customer_id: int, key: str) -> bool:
    from expertbook.experts.models import Booking

    return db.session.scalar(select(Booking.id).where(Booking.customer_id == customer_id, Booking.idempotency_key == key)) is not None


# ---------------------------------------------------------------------------- clinic

CLINIC_DOCTORS = [
    ("Dr. Anjali Sharma", "Cardiology"),
    ("Dr. Vikram Rao", "Dermatology"),
    ("Dr. Meena Iyer", "Paediatrics"),
    ("Dr. Arjun Nair", "Orthopaedics"),
]
FAMILY = ["Priya Raman", "Karthik Raman", "Lakshmi Raman", "Arun Raman", "Divya Raman"]


def load_clinic() -> None:
    """City General Hospital's doctors, a week of sessions from today, and some bookings by the demo patient.

    Sessions that exist are skipped and bookings carry fixed idempotency keys, so running it again adds
    only what is missing (e.g. the days that have come into the week since).
    """
    from datetime import time, timedelta

    from expertbook.clinic import booking, sessions, states
    from expertbook.clinic.models import Slot
    from expertbook.errors import ServiceError

    staff, patient = _user(HOSPITAL[3]), _user(PATIENT[1])
    if staff is None or patient is None or staff.hospital_id is None:
        return
    today = states.local_today(staff.hospital.timezone)
    week_end = today + timedelta(days=6)
    day_sessions = [(time(9), time(12), 10, CLINIC_DOCTORS), (time(17), time(19), 6, CLINIC_DOCTORS[:2])]
    for start, end, capacity, doctors in day_sessions:
        try:
            sessions.create_slots(staff.id, doctors, today, start, end, capacity, week_end)
        except ServiceError:
            pass  # e.g. today's evening session is over and nothing else is missing
    slots = db.session.scalars(
        select(Slot).where(Slot.hospital_id == staff.hospital_id, Slot.date >= today, Slot.date <= week_end).order_by(Slot.date, Slot.start_time, Slot.id)
    ).all()
    for index, slot in enumerate(slots):
        # A few bookings everywhere, and one evening session almost full, so every badge shows up.
        wanted = 5 if slot.start_time == time(17) and index % 3 == 0 else index % 4
        for n in range(wanted):
            try:
                booking.book(slot.id, patient.id, FAMILY[n % len(FAMILY)], "9876543210", idempotency_key=f"demo-{slot.id}-{n}")
            except ServiceError:
                break  # over, closed or full: leave it as it is
    _front_desk(staff.hospital_id, patient.id, [slot for slot in slots if slot.date > today])


WALK_INS = [("Ravi Kumar", "9840011223"), ("Fatima Begum", "9840044556"), ("Joseph Dsouza", "9840077889")]


def _front_desk(hospital_id: int, patient_id: int, slots: list) -> None:
    """A day at the desk: walk-ins in tomorrow's first session, a full evening session the demo patient
    waits for, and a session cancelled because its doctor is ill (the patient's appointments there wait
    to be moved). Each part is skipped if the demo data already has it."""
    from datetime import time

    from expertbook.clinic import booking, sessions, waitlist
    from expertbook.clinic.models import Appointment, Slot, WaitlistEntry
    from expertbook.errors import ServiceError

    if not slots or db.session.scalar(select(Slot.id).where(Slot.hospital_id == hospital_id, Slot.cancelled_at.is_not(None))):
        return  # loaded before (or the week has no session after today)
    has_walk_in = select(Appointment.id).where(Appointment.walk_in.is_(True), Appointment.slot_id.in_([s.id for s in slots]))
    if db.session.scalar(has_walk_in) is None:
        for name, number in WALK_INS[:2]:  # tomorrow's first session
            try:
                booking.walk_in(slots[0].id, hospital_id, name, number)
            except ServiceError:
                break
    evenings = [s for s in slots if s.start_time == time(17)]
    evening = max(evenings, key=lambda s: s.booked_count, default=None)  # the almost full one
    if evening is not None and db.session.scalar(select(WaitlistEntry.id).where(WaitlistEntry.slot_id == evening.id)) is None:
        for n in range(evening.capacity - evening.booked_count):
            try:
                booking.walk_in(evening.id, hospital_id, *WALK_INS[n % len(WALK_INS)])
            except ServiceError:
                break
        try:
            waitlist.join_waitlist(evening.id, patient_id, "Priya Raman", "9876543210")
        except ServiceError:
            pass
    # The last day's first session with the patient's bookings: its doctor calls in sick.
    ill = next((s for s in reversed(slots) if s.start_time == time(9) and s.booked_count), None)
    if ill is not None:
        sessions.cancel_session(ill.id, hospital_id, "Dr. unwell today; please move to another session.")
