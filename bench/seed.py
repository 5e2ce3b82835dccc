"""Seed the bench's ExpertBook database with plain SQL, and make the credentials the load scripts use.

Rows are written directly (not through the services) because a benchmark needs thousands of them in
seconds; the columns are the ones migrations 0001/0002 create (and 0010's ``published`` and session kinds), so a schema change that breaks this
shows up as a failing ``make bench``, not as silently wrong figures.
"""
from __future__ import annotations

import hashlib
import secrets
import sys
import time
from dataclasses import dataclass, field
from datetime import timedelta

import psycopg

from expertbook.api.service import expiry, issue_token

SPECIALIZATIONS = ("Cardiology", "Dermatology", "General Medicine", "Orthopaedics", "Paediatrics")
# Any valid Argon2id hash: nobody logs in with a password during the bench.
PASSWORD_HASH = "$argon2id$v=19$m=65536,t=3,p=4$YmVuY2hiZW5jaGJlbmNo$0vE5lT3Yp1tOEnvcsBdJZ2t2XkQ7bM4n2r4X9VbW9aQ"
SESSION_DAYS = 1


@dataclass
class Seeded:
    """What the load scripts and the checks need to know about the seeded rows."""

    hospital_id: int
    slot_first: int
    slot_count: int
    rush_first: int
    rush_count: int
    rush_capacity: int
    dates: list[str]
    patient_ids: list[int]
    staff_id: int
    session_tokens: dict[int, str] = field(default_factory=dict)


def _login_session(cur, user_id: int, kind: str = "web", lifetime: timedelta = timedelta(days=SESSION_DAYS)) -> str:
    # A browser's session token, or an API token's session id (see expertbook.auth.sessions).
    token = secrets.token_urlsafe(32)
    cur.execute(
        """INSERT INTO login_sessions (token_hash, user_id, kind, created_at, expires_at, last_seen_at)
           VALUES (%s, %s, %s, now(), now() + %s, now())""",
        (hashlib.sha256(token.encode()).hexdigest(), user_id, kind, lifetime),
    )
    return token


def seed_load(dsn: str, patients: int, slots: int, rush_slots: int, rush_capacity: int) -> Seeded:
    """One hospital, ten doctors, ``slots`` sessions of (practically) unlimited capacity like the floor's,
    ``rush_slots`` small sessions for the overbooking check, ``patients`` patients and a staff admin."""
    with psycopg.connect(dsn, autocommit=False) as conn, conn.cursor() as cur:
        hospital_id = cur.execute(
            "INSERT INTO hospitals (name, location, timezone, published, created_at) VALUES ('Bench General', 'Benchpur', 'Asia/Kolkata', true, now()) RETURNING id"
        ).fetchone()[0]
        cur.execute(
            """INSERT INTO doctors (hospital_id, name, specialization, created_at)
               SELECT %s, 'Dr Bench ' || i, (%s::text[])[1 + i %% %s], now() FROM generate_series(0, 9) AS i""",
            (hospital_id, list(SPECIALIZATIONS), len(SPECIALIZATIONS)),
        )
        doctors = [row[0] for row in cur.execute("SELECT id FROM doctors WHERE hospital_id = %s ORDER BY id", (hospital_id,))]
        # Session i: doctor i % 10 on day 1 + i / 10 (local dates from tomorrow on), 09:00-12:00 in the hospital's zone.
        insert_slots = """
            INSERT INTO slots (hospital_id, doctor_id, date, start_time, end_time, starts_at, ends_at, capacity,
                               booked_count, tokens_issued, closed, version, created_at)
            SELECT %(h)s, (%(doctors)s::int[])[1 + i %% 10], d, %(start)s::time, %(end)s::time,
                   (d + %(start)s::time) AT TIME ZONE 'Asia/Kolkata', (d + %(end)s::time) AT TIME ZONE 'Asia/Kolkata',
                   %(capacity)s, 0, 0, false, 1, now()
            FROM generate_series(0, %(n)s - 1) AS i, LATERAL (SELECT current_date + 1 + i / 10 AS d) AS day
            RETURNING id"""
        ids = [r[0] for r in cur.execute(insert_slots, {"h": hospital_id, "doctors": doctors, "start": "09:00", "end": "12:00", "capacity": 1_000_000, "n": slots})]
        rush = [r[0] for r in cur.execute(insert_slots, {"h": hospital_id, "doctors": doctors, "start": "14:00", "end": "16:00", "capacity": rush_capacity, "n": rush_slots})]
        assert ids == list(range(ids[0], ids[0] + slots)) and rush == list(range(rush[0], rush[0] + rush_slots))
        dates = [r[0].isoformat() for r in cur.execute("SELECT DISTINCT date FROM slots WHERE id = ANY(%s) ORDER BY date", (ids,))]
        patient_ids = [
            r[0]
            for r in cur.execute(
                """INSERT INTO users (name, email, password_hash, is_expert, hospital_id, is_staff_admin, is_admin, created_at)
                   SELECT 'Bench Patient ' || i, 'patient' || i || '@bench.example', %s, false, NULL, false, false, now()
                   FROM generate_series(1, %s) AS i RETURNING id""",
                (PASSWORD_HASH, patients),
            )
        ]
        staff_id = cur.execute(
            """INSERT INTO users (name, email, password_hash, is_expert, hospital_id, is_staff_admin, is_admin, created_at)
               VALUES ('Bench Staff', 'staff@bench.example', %s, false, %s, true, false, now()) RETURNING id""",
            (PASSWORD_HASH, hospital_id),
        ).fetchone()[0]
        seeded = Seeded(hospital_id, ids[0], slots, rush[0], rush_slots, rush_capacity, dates, patient_ids, staff_id)
        for user_id in [*patient_ids, staff_id]:
            seeded.session_tokens[user_id] = _login_session(cur, user_id)
        conn.commit()
    return seeded


def bearer_tokens(dsn: str, user_ids: list[int], secret_key: str, hours: int = 12) -> list[str]:
    """API tokens for the users, each with its login session, as ``POST /api/auth/login`` makes them."""
    expires_at = expiry(hours)
    with psycopg.connect(dsn, autocommit=False) as conn, conn.cursor() as cur:
        session_ids = [_login_session(cur, user_id, "api", timedelta(hours=hours)) for user_id in user_ids]
        conn.commit()
    return [issue_token(user_id, session_id, secret_key, expires_at) for user_id, session_id in zip(user_ids, session_ids)]


def session_cookie(app, session_token: str) -> str:
    """The value of a logged-in browser's ``session`` cookie, signed with the app's key.

    It holds what logging in leaves there: Flask-Login's server-side session token, a permanent
    session, and Flask-WTF's CSRF secret (so the pages can render a form without a cookie write).
    """
    serializer = app.session_interface.get_signing_serializer(app)
    return serializer.dumps({"_user_id": session_token, "_fresh": True, "_permanent": True, "csrf_token": hashlib.sha1(secrets.token_bytes(64)).hexdigest()})


# ---------------------------------------------------------------------------- scale


def progress(label: str, done: int, total: int, started: float) -> None:
    """A one-line progress bar on the terminal (rewritten in place)."""
    width = 30
    filled = int(width * done / total)
    elapsed = time.monotonic() - started
    rate = done / elapsed if elapsed > 0 else 0
    sys.stdout.write(f"\r  {label:<13} [{'#' * filled}{'.' * (width - filled)}] {done:>9,}/{total:,}  {rate:>9,.0f}/s")
    if done >= total:
        sys.stdout.write("\n")
    sys.stdout.flush()


@dataclass
class Scale:
    staff_session: str
    patient_session: str
    patient_appointments: int
    search_date: str


def seed_scale(dsn: str, slots: int, appointments: int, hospitals: int = 50, doctors_per_hospital: int = 20, patients: int = 50_000) -> Scale:
    """Load ``slots`` sessions and ``appointments`` appointments with INSERT ... SELECT generate_series, in chunks
    with a progress bar, then ANALYZE. Slots run from 30 days ago onward, so lists hold past and upcoming ones."""
    chunk = 50_000
    with psycopg.connect(dsn, autocommit=True) as conn, conn.cursor() as cur:
        started = time.monotonic()
        hospital_ids = [
            r[0]
            for r in cur.execute(
                """INSERT INTO hospitals (name, location, timezone, published, created_at)
                   SELECT 'Scale Hospital ' || i, (ARRAY['Mumbai','Delhi','Pune','Chennai','Kolkata'])[1 + i %% 5] || ' ' || i, 'Asia/Kolkata', true, now()
                   FROM generate_series(1, %s) AS i RETURNING id""",
                (hospitals,),
            )
        ]
        doctor_ids = [
            r[0]
            for r in cur.execute(
                """INSERT INTO doctors (hospital_id, name, specialization, created_at)
                   SELECT h, 'Dr Scale ' || h || '-' || j, (%s::text[])[1 + j %% %s], now()
                   FROM unnest(%s::int[]) AS h, generate_series(1, %s) AS j ORDER BY h, j RETURNING id""",
                (list(SPECIALIZATIONS), len(SPECIALIZATIONS), hospital_ids, doctors_per_hospital),
            )
        ]
        n_doctors = len(doctor_ids)
        first_patient = cur.execute(
            """INSERT INTO users (name, email, password_hash, is_expert, hospital_id, is_staff_admin, is_admin, created_at)
               SELECT 'Scale Patient ' || i, 'scale' || i || '@bench.example', %s, false, NULL, false, false, now()
               FROM generate_series(1, %s) AS i RETURNING id""",
            (PASSWORD_HASH, patients),
        ).fetchall()[0][0]
        # Slot i: doctor i % D, on day i / D - 30; booked_count = tokens_issued = per-slot appointments.
        per_slot = appointments // slots
        first_slot = None
        for offset in range(0, slots, chunk):
            n = min(chunk, slots - offset)
            row = cur.execute(
                """INSERT INTO slots (hospital_id, doctor_id, date, start_time, end_time, starts_at, ends_at, capacity,
                                      booked_count, tokens_issued, closed, version, created_at)
                   SELECT d.hospital_id, d.id, day, '09:00', '12:00',
                          (day + time '09:00') AT TIME ZONE 'Asia/Kolkata', (day + time '12:00') AT TIME ZONE 'Asia/Kolkata',
                          %(capacity)s, %(per)s, %(per)s, false, 1, now()
                   FROM generate_series(%(a)s, %(b)s) AS i
                   JOIN doctors AS d ON d.id = (%(doctors)s::int[])[1 + i %% %(nd)s]
                   CROSS JOIN LATERAL (SELECT current_date - 30 + i / %(nd)s AS day) AS t
                   ORDER BY i RETURNING id""",
                {"capacity": per_slot * 2, "per": per_slot, "a": offset, "b": offset + n - 1, "doctors": doctor_ids, "nd": n_doctors},
            ).fetchone()
            first_slot = first_slot or row[0]
            progress("slots", offset + n, slots, started)
        started = time.monotonic()
        # Appointment j: slot j % S, token 101 + j / S; a random patient; past sessions' patients arrived.
        for offset in range(0, appointments, chunk):
            n = min(chunk, appointments - offset)
            cur.execute(
                """INSERT INTO appointments (slot_id, user_id, patient_name, contact_number, token_number, status, booked_at)
                   SELECT %(s0)s + j %% %(slots)s, %(p0)s + floor(random() * %(patients)s)::int, 'Patient ' || j, '9876543210',
                          101 + j / %(slots)s,
                          CASE WHEN (j %% %(slots)s) / %(nd)s < 30 THEN 'arrived' ELSE 'booked' END,
                          now() - interval '40 days' + (j %% %(slots)s) * interval '30 seconds'
                   FROM generate_series(%(a)s, %(b)s) AS j""",
                {"s0": first_slot, "slots": slots, "p0": first_patient, "patients": patients, "nd": n_doctors, "a": offset, "b": offset + n - 1},
            )
            progress("appointments", offset + n, appointments, started)
        print("  ANALYZE ...", flush=True)
        cur.execute("ANALYZE")
        # "My appointments" for a patient with the median number of appointments.
        patient_id, count = cur.execute(
            """SELECT user_id, count(*) FROM appointments WHERE user_id >= %s GROUP BY user_id
               ORDER BY count(*), user_id OFFSET %s LIMIT 1""",
            (first_patient, patients // 2),
        ).fetchone()
        staff_id = cur.execute(
            """INSERT INTO users (name, email, password_hash, is_expert, hospital_id, is_staff_admin, is_admin, created_at)
               VALUES ('Scale Staff', 'scale-staff@bench.example', %s, false, %s, true, false, now()) RETURNING id""",
            (PASSWORD_HASH, hospital_ids[0]),
        ).fetchone()[0]
        staff_session = _login_session(cur, staff_id)
        patient_session = _login_session(cur, patient_id)
        search_date = cur.execute("SELECT (current_date + 7)::text").fetchone()[0]
    return Scale(staff_session, patient_session, count, search_date)
