"""Every area's tables, imported in one place so the mapper and the migrations see all of them."""
from expertbook.auth.models import LoginSession, User  # noqa: F401
from expertbook.clinic.models import Appointment, Doctor, Hospital, Slot  # noqa: F401
