"""The demo data for experts: two experts with services, hours and bookings; loading twice adds nothing."""
from sqlalchemy import func, select

from expertbook.experts.models import Booking, ExpertProfile, Service
from expertbook.extensions import db


def test_demo_has_two_experts_with_services_and_bookings(app):
    runner = app.test_cli_runner()
    first = runner.invoke(args=["demo"])
    assert first.exit_code == 0, first.output
    assert "expert@demo.expertbook.example" in first.output and "expert2@demo.expertbook.example" in first.output
    counts = lambda: tuple(db.session.scalar(select(func.count()).select_from(m)) for m in (ExpertProfile, Service, Booking))  # noqa: E731
    db.session.rollback()
    before = counts()
    assert before == (2, 4, 4)
    assert db.session.scalar(select(func.count()).select_from(Service).where(Service.requires_acceptance.is_(True))) == 2
    assert {b.status for b in db.session.scalars(select(Booking))} == {"confirmed", "pending"}
    assert runner.invoke(args=["demo"]).exit_code == 0
    db.session.rollback()
    assert counts() == before
