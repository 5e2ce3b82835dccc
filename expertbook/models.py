"""Every area's tables, imported in one place so the mapper and the migrations see all of them."""
from expertbook.auth.models import LoginSession, User  # noqa: F401
from expertbook.clinic.models import Appointment, Doctor, Hospital, Slot, WaitlistEntry  # noqa: F401
from expertbook.experts.models import Booking, DateOverride, ExpertProfile, Service, WeeklyHours  # noqa: F401
from expertbook.notifications.models import OutboxEmail  # noqa: F401
from expertbook.video.models import Meeting, ZoomConnection  # noqa: F401
from expertbook.calendars.models import BusyInterval, CalendarConnection, CalendarEvent, RemoteCalendar  # noqa: F401
from expertbook.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookSubscription, WebhookSubscriptionEvent  # noqa: F401
