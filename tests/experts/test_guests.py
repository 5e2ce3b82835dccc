"""Booking without an account: the same rules, the signed manage link (checked on every use, dead
once the booking has ended, showing the current state), and claiming by a verified account."""
import base64
import string
from datetime import timedelta

import pytest
from sqlalchemy import select

from expertbook.auth.models import User
from expertbook.errors import Conflict, NotFound, ValidationFailed
from expertbook.experts import service
from expertbook.experts.models import Booking
from expertbook.extensions import db
from tests.experts.helpers import next_weekday_at
from tests.factories import make_expert, make_service, make_user


@pytest.fixture
def expert(app):
    return make_expert("Ada Expert")


GUEST = dict(name="Gita Guest", email="Gita.Guest@Example.com", phone="+44 20 7946 0001", notes="First time", customer_timezone="America/New_York")


def guest_book(svc, start, **extra):
    return service.book(None, svc.id, start, **(GUEST | extra))


def test_a_guest_books_with_contact_details_only(expert):
    consult = make_service(expert)
    booking = guest_book(consult, next_weekday_at(10))
    assert (booking.customer_id, booking.is_guest, booking.status) == (None, True, "confirmed")
    assert (booking.customer_name, booking.customer_email, booking.customer_phone, booking.notes) == (
        "Gita Guest", "gita.guest@example.com", "+44 20 7946 0001", "First time")
    # The same overlap rules as everyone's.
    with pytest.raises(Conflict, match="just taken"):
        guest_book(consult, next_weekday_at(10), email="other@example.com")
    customer = make_user()
    with pytest.raises(Conflict, match="just taken"):
        service.book(customer.id, consult.id, next_weekday_at(10), name="C", email=customer.email)
    with pytest.raises(ValidationFailed) as error:
        guest_book(consult, next_weekday_at(12), email="not an address", name="")
    assert set(error.value.errors) == {"email", "name"}


def test_a_guest_retry_with_the_same_key_is_the_same_booking_but_not_across_addresses(expert):
    consult = make_service(expert)
    first = guest_book(consult, next_weekday_at(10), idempotency_key="k1")
    again = guest_book(consult, next_weekday_at(10), idempotency_key="k1")
    assert again.id == first.id and again.replayed
    with pytest.raises(Conflict):  # someone else's key is not a replay of Gita's booking
        guest_book(consult, next_weekday_at(10), idempotency_key="k1", email="mallory@example.com")


def test_a_guest_cannot_book_the_experts_own_service_by_their_address(expert):
    consult = make_service(expert)
    with pytest.raises(Conflict, match="your own service"):
        guest_book(consult, next_weekday_at(10), email=expert.user.email.upper())


def test_the_manage_link_works_until_a_set_time_after_the_booking_ends(app, expert):
    consult = make_service(expert)
    booking = guest_book(consult, next_weekday_at(10))
    token = service.manage_token(booking)
    assert app.config["MANAGE_LINK_HOURS_AFTER_END"] == 24  # the documented default
    assert service.booking_by_manage_token(token).id == booking.id
    # After the booking: still there to see how it went, for MANAGE_LINK_HOURS_AFTER_END.
    assert service.booking_by_manage_token(token, now=booking.end_at + timedelta(hours=23, minutes=59)).id == booking.id
    with pytest.raises(NotFound):
        service.booking_by_manage_token(token, now=booking.end_at + timedelta(hours=24))  # expired
    app.config["MANAGE_LINK_HOURS_AFTER_END"] = 2
    assert service.booking_by_manage_token(token, now=booking.end_at + timedelta(hours=1)).id == booking.id
    with pytest.raises(NotFound):
        service.booking_by_manage_token(token, now=booking.end_at + timedelta(hours=2))


def test_the_manage_link_is_revoked_once_the_booking_is_in_an_account(app, expert, verification):
    consult = make_service(expert)
    booking = guest_book(consult, next_weekday_at(10))
    token = service.manage_token(booking)
    user = make_user("Gita Guest", "gita.guest@example.com")
    verification.add(user.email)
    assert service.claim_guest_bookings(user.id, user.email) == 1
    db.session.expire_all()
    with pytest.raises(NotFound, match="now in your account"):
        service.booking_by_manage_token(token)
    with pytest.raises(NotFound):
        service.guest_cancel(token)
    assert db.session.get(Booking, booking.id).status == "confirmed"
    # The account's owner manages it, logged in, as any of their bookings.
    assert service.booking_for(user.id, booking.id).id == booking.id


@pytest.mark.parametrize("mangle", [
    lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),  # a changed signature
    lambda t: t + "x",
    lambda t: "",
    lambda t: "not-a-token",
    lambda t: t.split(".")[0],  # the payload without its signature
])
def test_a_wrong_manage_token_is_not_found(expert, mangle):
    consult = make_service(expert)
    booking = guest_book(consult, next_weekday_at(10))
    with pytest.raises(NotFound):
        service.booking_by_manage_token(mangle(service.manage_token(booking)))


def other_spellings(token: str) -> list[str]:
    """Spellings of ``token`` that decode to the same bytes as it does: base64 padding, and the other
    characters for the unused low bits of the signature's last character."""
    payload, _, signature = token.rpartition(".")

    def decoded(text: str) -> bytes:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))

    same_bits = [
        f"{payload}.{signature[:-1]}{char}" for char in string.ascii_letters + string.digits + "-_"
        if char != signature[-1] and decoded(signature[:-1] + char) == decoded(signature)
    ]
    return [token + "=", token + "==", *same_bits]


def test_only_the_exact_token_issued_opens_the_booking(expert):
    """One booking, one link: other spellings that the signature's decoder would read alike are refused."""
    consult = make_service(expert)
    booking = guest_book(consult, next_weekday_at(10))
    token = service.manage_token(booking)
    spellings = other_spellings(token)
    assert len(spellings) >= 3 and token not in spellings
    assert service.booking_by_manage_token(token).id == booking.id
    for spelling in spellings:
        with pytest.raises(NotFound):
            service.booking_by_manage_token(spelling)
        with pytest.raises(NotFound):
            service.guest_cancel(spelling)
    assert service.manage_link_booking_id(token) == booking.id
    assert {service.manage_link_booking_id(spelling) for spelling in spellings} == {None}


def test_a_token_signed_with_another_key_or_for_another_booking_is_not_found(app, expert):
    from itsdangerous import URLSafeSerializer

    consult = make_service(expert)
    booking = guest_book(consult, next_weekday_at(10))
    other = guest_book(consult, next_weekday_at(12))
    forged = URLSafeSerializer("another-key", salt="expertbook-guest-booking-manage").dumps([booking.id, booking.ics_uid])
    swapped = URLSafeSerializer(app.config["SECRET_KEY"], salt="expertbook-guest-booking-manage").dumps([booking.id, other.ics_uid])
    for token in (forged, swapped):
        with pytest.raises(NotFound):
            service.booking_by_manage_token(token)


def test_through_the_link_a_guest_moves_and_cancels_and_old_links_show_the_current_state(expert):
    consult = make_service(expert, requires_acceptance=True)
    booking = guest_book(consult, next_weekday_at(10))
    service.respond(expert.user_id, booking.id, accept=True)
    token = service.manage_token(booking)
    moved = service.guest_reschedule(token, next_weekday_at(14), "Clash")
    assert (moved.start_at, moved.status, moved.reschedule_reason) == (next_weekday_at(14), "pending", "Clash")
    assert service.manage_token(moved) == token  # the link does not change with the booking
    assert service.booking_by_manage_token(token).start_at == next_weekday_at(14)
    cancelled = service.guest_cancel(token, "No longer needed")
    assert (cancelled.status, cancelled.cancelled_by, cancelled.cancel_reason) == ("cancelled", None, "No longer needed")
    assert service.booking_by_manage_token(token).status == "cancelled"  # the old link shows it is off
    with pytest.raises(Conflict):
        service.guest_cancel(token)
    with pytest.raises(Conflict):
        service.guest_reschedule(token, next_weekday_at(15))


def test_the_guest_link_cannot_act_once_the_booking_is_over(expert):
    consult = make_service(expert)
    booking = guest_book(consult, next_weekday_at(10))
    token = service.manage_token(booking)
    just_after, long_after = booking.end_at + timedelta(minutes=1), booking.end_at + timedelta(days=2)
    with pytest.raises(Conflict, match="over"):  # the link still opens it, but a booking that is over stays as it is
        service.guest_cancel(token, now=just_after)
    with pytest.raises(Conflict, match="started"):
        service.guest_reschedule(token, next_weekday_at(12), now=just_after)
    with pytest.raises(NotFound):
        service.guest_cancel(token, now=long_after)
    with pytest.raises(NotFound):
        service.guest_reschedule(token, next_weekday_at(12), now=long_after)


@pytest.fixture
def verification(monkeypatch):
    """Accounts that count as verified (``User.email_verified``) when their email is in the set."""
    verified: set[str] = set()
    monkeypatch.setattr(User, "email_verified", property(lambda user: user.email in verified), raising=False)
    return verified


def test_a_verified_account_claims_the_guest_bookings_of_its_address(expert, verification):
    consult = make_service(expert)
    mine = [guest_book(consult, next_weekday_at(10)), guest_book(consult, next_weekday_at(12))]
    theirs = guest_book(consult, next_weekday_at(14), email="someone.else@example.com")
    user = make_user("Gita Guest", "gita.guest@example.com")
    assert service.claim_guest_bookings(user.id, user.email) == 0  # not verified yet: nothing is revealed
    verification.add(user.email)
    assert service.claim_guest_bookings(user.id, "GITA.GUEST@example.com") == 2
    db.session.expire_all()
    assert {b.id for b in service.bookings_as_customer(user.id)} == {b.id for b in mine}
    assert all(not b.is_guest for b in service.bookings_as_customer(user.id))
    assert db.session.get(Booking, theirs.id).customer_id is None
    assert service.claim_guest_bookings(user.id, user.email) == 0  # once
    # The claimed bookings now behave as the account's own.
    assert service.cancel(user.id, mine[0].id).status == "cancelled"


def test_an_address_that_is_not_the_accounts_own_claims_nothing(expert, verification):
    consult = make_service(expert)
    guest_book(consult, next_weekday_at(10))
    user = make_user("Mallory", "mallory@example.com")
    verification.add(user.email)
    assert service.claim_guest_bookings(user.id, "gita.guest@example.com") == 0
    assert db.session.scalar(select(Booking.customer_id)) is None


def test_verifying_the_address_claims_its_guest_bookings(app, expert):
    """Registering alone proves nothing; following the verification link attaches the address's guest bookings."""
    from expertbook.auth import service as accounts
    from expertbook.auth import tokens
    from expertbook.auth.models import VERIFY
    from expertbook.database import transaction

    consult = make_service(expert)
    booking = guest_book(consult, next_weekday_at(10))
    other = guest_book(consult, next_weekday_at(12), email="someone.else@example.com")
    user = accounts.register_user("Gita Guest", "gita.guest@example.com", "a long enough password")
    db.session.expire_all()
    assert db.session.get(Booking, booking.id).customer_id is None
    with transaction():
        secret = tokens.issue(db.session.get(User, user.id), VERIFY, timedelta(days=1))
    assert accounts.verify_email(secret) == user.id
    db.session.expire_all()
    assert db.session.get(Booking, booking.id).customer_id == user.id
    assert db.session.get(Booking, other.id).customer_id is None
