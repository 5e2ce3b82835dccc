"""The emails of a move (issue 16): both sides, each with the new and old time in their own zone, their
own meeting link and a calendar file that moves the event; a guest's links are their private manage link;
a moved request accepted again is confirmed with its links; the re-authorization email lists every
waiting booking. Real SMTP on loopback, real Zoom stand-in."""
from __future__ import annotations

from datetime import timedelta

from expertbook.database import utcnow
from expertbook.experts import service as experts
from expertbook.video import meetings
from tests.experts.helpers import book_kwargs, next_weekday_at
from tests.factories import make_service, make_user
from tests.notifications.conftest import smtp  # noqa: F401 - the SMTP server fixture
from tests.video.conftest import expire_stored_token
from tests.video.test_booking_meetings import BASE, app_config, book, html_of, ics_of, meeting_of, profile, text_of, to  # noqa: F401


def _moved(messages):
    return [m for m in messages if str(m["Subject"]).strip().startswith("Moved:")]


def test_both_sides_get_the_move_in_their_zone_with_their_link_and_a_calendar_that_moves_the_event(profile, zoom, smtp):
    customer = make_user("Sinduja Vel", "sinduja@example.com")
    svc = make_service(profile, "Technology Consulting Session")
    booking = experts.book(customer.id, svc.id, next_weekday_at(10, tz=profile.timezone),
                           **book_kwargs(customer, customer_timezone="Asia/Kolkata"))
    join_url = meeting_of(booking.id).join_url
    smtp.wait_for(2)  # the confirmations
    new = next_weekday_at(15, tz=profile.timezone)
    experts.reschedule(customer.id, booking.id, new, "Train strike")
    moved = _moved(smtp.wait_for(4))
    [to_customer] = to(moved, "sinduja@example.com")
    [to_expert] = to(moved, profile.user.email)
    customer_text, expert_text = text_of(to_customer), text_of(to_expert)
    # Each side's own zone: the customer booked from Kolkata, the expert works in London.
    ist = new.astimezone(__import__("zoneinfo").ZoneInfo("Asia/Kolkata"))
    assert f"{ist:%H:%M}" in customer_text and "(Asia/Kolkata)" in customer_text and "(Europe/London)" in expert_text
    assert "Train strike" in customer_text and "moved by you" in customer_text and "moved by the customer, Sinduja Vel" in expert_text
    # The links: the same join link as before for the customer, our start route for the expert.
    start_route = f"{BASE}/video/meetings/{booking.id}/start"
    assert join_url in customer_text and join_url in html_of(to_customer) and start_route not in customer_text
    assert start_route in expert_text and join_url not in expert_text and "zak=" not in expert_text
    # The calendar files: same UID, SEQUENCE up, the new time, each side's link.
    for message, link in ((to_customer, join_url), (to_expert, start_route)):
        calendar = ics_of(message)
        [event] = calendar.walk("VEVENT")
        assert str(calendar["METHOD"]) == "REQUEST" and str(event["UID"]) == f"{booking.ics_uid}@expertbook"
        assert int(event["SEQUENCE"]) == 1 and event.decoded("DTSTART") == new
        assert str(event["URL"]) == link and str(event["LOCATION"]) == link


def test_the_customer_moving_a_request_back_to_pending_is_told_it_waits_and_the_expert_to_answer(profile, zoom, smtp):
    customer = make_user("Ana Customer", "ana@example.com")
    svc = make_service(profile, "Tax advice", requires_acceptance=True)
    booking = experts.book(customer.id, svc.id, next_weekday_at(10, tz=profile.timezone), **book_kwargs(customer))
    experts.respond(profile.user_id, booking.id, accept=True)
    before = len(smtp.wait_for(4))  # request, accepted, and the two confirmations with the links
    experts.reschedule(customer.id, booking.id, next_weekday_at(11, tz=profile.timezone))
    moved = _moved(smtp.wait_for(before + 2))
    assert "will accept or decline it" in text_of(to(moved, "ana@example.com")[0])
    assert "please accept or decline it" in text_of(to(moved, profile.user.email)[0])
    # Accepted again: its meeting already exists (moved, not re-created), and both get the links now.
    experts.respond(profile.user_id, booking.id, accept=True)
    join_url = meeting_of(booking.id).join_url
    messages = smtp.wait_for(before + 4)
    confirmations = [m for m in messages[before + 2:] if m not in _moved(messages)]
    assert any(join_url in text_of(m) for m in to(confirmations, "ana@example.com"))
    assert any(f"{BASE}/video/meetings/{booking.id}/start" in text_of(m) for m in to(confirmations, profile.user.email))
    # Only the confirmation with the link: no second "accepted, the link follows" (whose calendar file,
    # with the same UID and SEQUENCE but no link, a calendar might keep instead).
    from sqlalchemy import func, select

    from expertbook.extensions import db
    from expertbook.notifications.models import OutboxEmail

    accepted_notes = select(func.count()).select_from(OutboxEmail).where(
        OutboxEmail.to_email == "ana@example.com", OutboxEmail.subject.like("%accepted your booking")
    )
    db.session.rollback()
    assert db.session.scalar(accepted_notes) == 1  # the first acceptance's, before the move


def test_a_guest_is_sent_the_private_manage_link_never_a_login_page(profile, zoom, smtp):
    svc = make_service(profile, "In person", location_kind="in_person", location_detail="1 High St")
    booking = experts.book(None, svc.id, next_weekday_at(10, tz=profile.timezone), name="Gita Guest", email="gita@example.com")
    manage = experts.manage_url(booking)
    [confirmation] = to(smtp.wait_for(2), "gita@example.com")
    assert manage in text_of(confirmation) and f"/experts/bookings/{booking.id}" not in text_of(confirmation)
    experts.guest_reschedule(experts.manage_token(booking), next_weekday_at(12, tz=profile.timezone))
    [moved] = to(_moved(smtp.wait_for(4)), "gita@example.com")
    assert manage in text_of(moved) and "1 High St" in text_of(moved)


def test_the_reauthorization_email_lists_every_waiting_booking_in_the_words_on_screen(profile, zoom, smtp):
    from expertbook.devtools.zoom_standin import MEETING_CREATE

    zoom.standin.fail(MEETING_CREATE, "500", times=None)  # Zoom is down: three meetings wait for a retry
    svc = make_service(profile, "Technology Consulting Session")
    names = [f"Customer {n}" for n in range(3)]
    for n, name in enumerate(names):
        book(svc, make_user(name, f"c{n}@example.com"), hour=10 + 2 * n)
    zoom.standin.clear_faults()
    expire_stored_token(profile.user_id, zoom.standin)
    zoom.standin.revoke_all()
    meetings.relay(now=utcnow() + timedelta(hours=2))
    [reauth] = [m for m in smtp.wait_for(1) if m["Subject"].startswith("Action required")]
    assert reauth["Subject"] == "Action required: re-authorize your Zoom account - 3 bookings waiting"
    text, html = text_of(reauth), html_of(reauth)
    assert all(name in text and name in html for name in names)  # every waiting booking, not only the first
    assert ">Re-authorize</a>" in html and '"Re-authorize"' in text  # the button on the Video settings page
    assert f"Zoom is connected as {zoom.standin.user['email']}" in text  # what that page says afterwards
