"""The number of SQL statements a page runs does not grow with the rows it shows (no N+1)."""
from __future__ import annotations

from contextlib import contextmanager
from datetime import time

import pytest
from sqlalchemy import event

from expertbook.extensions import db
from tests.factories import login, make_appointment, make_doctor, make_hospital, make_slot, make_staff, make_user


@contextmanager
def count_statements():
    statements: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(db.engine, "before_cursor_execute", record)


def _world(rows: int):
    """``rows`` slots spread over three hospitals, each with its own doctor and one appointment of one patient."""
    patient = make_user()
    hospitals = [make_hospital(f"Hospital {rows}-{h}", "Chennai") for h in range(3)]
    staff = make_staff(hospitals[0], email=f"staff{rows}@h.example")
    for i in range(rows):
        hospital = hospitals[i % 3]
        doctor = make_doctor(hospital, f"Dr. {i}", f"Speciality {i % 4}")
        slot = make_slot(hospital, doctor, start=time(8 + i % 10), end=time(9 + i % 10), days_ahead=1 + i // 10)
        make_appointment(slot, patient)
    return patient, staff


@pytest.mark.parametrize(
    ("url", "who"),
    [("/clinic/search", "patient"), ("/clinic/my-appointments", "patient"), ("/clinic/staff/slots", "staff")],
)
def test_statement_count_does_not_grow_with_rows(app, make_client, url, who):
    counts = []
    for rows in (3, 30):
        db.session.rollback()
        patient, staff = _world(rows)
        client = make_client()
        login(client, patient if who == "patient" else staff)
        client.get(url)  # warm-up: first-use queries (e.g. loading the app's metadata) are not the point
        with count_statements() as statements:
            response = client.get(url)
        assert response.status_code == 200
        html = response.get_data(as_text=True)
        shown = html.count("<tr id=")
        assert shown >= (rows // 3 if who == "staff" else rows), (url, rows, shown)
        counts.append(len(statements))
    assert counts[0] == counts[1], f"{url}: {counts[0]} statements for 3 rows but {counts[1]} for 30"


def test_availability_fragment_is_one_select_even_for_a_logged_in_patient(app, make_client):
    slot = make_slot()
    client = make_client()
    login(client, make_user())
    client.get(f"/clinic/slots/{slot.id}/availability")
    with count_statements() as statements:
        response = client.get(f"/clinic/slots/{slot.id}/availability")
    assert response.status_code == 200
    selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert len(selects) == 1 and "FROM slots" in selects[0], statements
    assert "Set-Cookie" not in response.headers
