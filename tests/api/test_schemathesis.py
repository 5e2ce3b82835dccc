"""Property-based testing of the JSON API against its own OpenAPI document, with schemathesis.

Every operation of ``/api/openapi.json`` is called with requests generated from the document, valid
ones and ones that break it (wrong types, missing fields, out-of-range numbers, bad formats, NUL
bytes), in-process over WSGI on the test database, authenticated with a bearer token of a user who
is hospital staff and an expert (so the staff and expert operations are exercised), with a slot,
another expert's service, an appointment and a booking to act on (ids 1, which the coverage phase
tries). It fails on:

- any 5xx (``not_a_server_error``);
- any request the document forbids that the app accepts (``negative_data_rejection``);
- any answer the document does not describe: status code, content type or body
  (``status_code_conformance``, ``content_type_conformance``, ``response_schema_conformance``).

Bounded and repeatable: at most 25 generated examples per operation and mode, derandomized, no
deadline. SQLite runs every operation; PostgreSQL (where out-of-range integers and NUL bytes used
to fail) runs them with fewer examples.
"""
from __future__ import annotations

import os
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from expertbook.experts import service as experts
from expertbook.extensions import db
from tests.experts.helpers import next_weekday_at
from tests.factories import api_token, make_appointment, make_expert, make_hospital, make_service, make_slot, make_staff, make_user

CHECKS = [not_a_server_error, negative_data_rejection, status_code_conformance, content_type_conformance, response_schema_conformance]
# Generated examples per operation and mode (the coverage phase adds its boundary cases on top).
MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "25"))
MAX_EXAMPLES_POSTGRESQL = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES_POSTGRESQL", "8"))


def _seed(app) -> str:
    """Objects with id 1 of every kind, and a caller who is staff of a hospital and an expert."""
    hospital = make_hospital("Apollo", "Chennai")
    caller = make_staff(hospital, name="Sam Staff", email="sam@example.com")
    slot = make_slot(hospital)
    other = make_expert(timezone="Europe/London")
    service = make_service(other)
    make_appointment(slot, caller)
    experts.book(caller.id, service.id, next_weekday_at(10), name="Sam Staff", email="sam@example.com")
    experts.create_profile(caller.id, "Sam Staff", "", "", "sam-staff", "UTC")
    make_service(experts.require_profile(caller.id), title="Own service")
    make_slot(doctor=slot.doctor, days_ahead=2)
    make_user(email="patient@example.com")
    return api_token(caller)


def _document() -> dict:
    """The document /api/openapi.json serves (its paths register when the API modules are imported)."""
    import expertbook.api.views  # noqa: F401 (registers every API module's paths)
    from expertbook.api import openapi

    return openapi.document("http://localhost/api")


def _schema(max_examples: int):
    schema = schemathesis.openapi.from_dict(_document())
    schema.config.generation.update(
        modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
        max_examples=max_examples,
        deterministic=True,
        with_security_parameters=False,
    )
    return schema


schema = _schema(MAX_EXAMPLES)
postgresql_schema = _schema(MAX_EXAMPLES_POSTGRESQL)
# The operations a caller without a token may use as a guest (security ``[{bearer}, {}]``), called
# again without the Authorization header: their guest path is a different handler.
GUEST_OPERATIONS = [
    (path, method)
    for path, operations in _document()["paths"].items()
    for method, operation in operations.items()
    if {} in operation.get("security", [])
]
guest_schema = _schema(MAX_EXAMPLES).include(
    func=lambda ctx: (ctx.operation.path, ctx.operation.method.lower()) in GUEST_OPERATIONS
)


@pytest.fixture
def app_config() -> dict:
    """Guest bookings are throttled per client address, and every generated request comes from one:
    a limit high enough that the examples reach the handler (the 429 itself is documented)."""
    return {"GUEST_BOOKING_LIMIT_PER_IP": "10000 per minute", "GUEST_BOOKING_LIMIT_PER_EMAIL": "10000 per minute"}


@pytest.fixture
def call_app(app):
    """The app as schemathesis calls it, with a seeded database and a bearer token of the caller."""
    token = _seed(app)

    def in_own_context(environ, start_response):
        # Each request gets its own application context (its own ``g`` and database session), as in
        # production; the test's context must not be shared between generated requests.
        with app.app_context():
            return app.wsgi_app(environ, start_response)

    return in_own_context, {"Authorization": f"Bearer {token}"}


def test_the_served_document_is_the_one_tested(client):
    served = client.get("/api/openapi.json").get_json()
    assert served["paths"] == _document()["paths"] and served["components"] == _document()["components"]


def _call(case, call_app) -> None:
    wsgi_app, headers = call_app
    case.call_and_validate(app=wsgi_app, headers=headers, checks=CHECKS)


HYPOTHESIS = settings(deadline=None, derandomize=True, suppress_health_check=list(HealthCheck), database=None)


@schema.parametrize()
@HYPOTHESIS
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_api_keeps_to_its_openapi_document(case, call_app):
    _call(case, call_app)


@guest_schema.parametrize()
@HYPOTHESIS
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_guest_doors_keep_to_the_openapi_document_without_a_token(case, call_app):
    assert GUEST_OPERATIONS, "POST /bookings takes guests"
    wsgi_app, _ = call_app
    case.call_and_validate(app=wsgi_app, headers={}, checks=CHECKS)


@postgresql_schema.parametrize()
@HYPOTHESIS
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_the_api_keeps_to_its_openapi_document_on_postgresql(case, call_app):
    """Fewer examples: PostgreSQL is where out-of-range integers and NUL bytes used to fail, so every
    operation runs there too, within the suite's time."""
    _call(case, call_app)
