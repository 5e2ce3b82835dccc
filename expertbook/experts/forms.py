"""Expert forms. They check shape; the service checks the rules and has the last word."""
from flask_wtf import FlaskForm
from wtforms import BooleanField, DateField, DecimalField, EmailField, HiddenField, IntegerField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from expertbook.experts.models import LOCATION_KINDS, VIDEO_PROVIDERS

WEEKDAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


class ExpertProfileForm(FlaskForm):
    display_name = StringField("Display name", validators=[DataRequired("Please enter the name customers see."), Length(max=120)])
    headline = StringField("Headline", validators=[Length(max=160)], description="One line, e.g. \"Tax advisor for freelancers\".")
    bio = TextAreaField("About you", validators=[Length(max=4000)])
    handle = StringField(
        "Public handle",
        validators=[DataRequired("Please choose a handle."), Length(min=3, max=40)],
        description="Your page will be /expert/<handle>: lower-case letters, digits and hyphens.",
    )
    timezone = StringField(
        "Time zone",
        validators=[DataRequired("Please choose your time zone.")],
        description="Your working hours are in this zone. Type a country or city (e.g. India or London) and pick it from the list.",
    )


class ServiceForm(FlaskForm):
    title = StringField("Title", validators=[DataRequired("Please give the service a title."), Length(max=120)])
    slug = StringField("URL slug", validators=[Optional(), Length(max=60)], description="Left empty, it is made from the title.")
    description = TextAreaField("Description", validators=[Length(max=4000)])
    duration_min = IntegerField("Duration (minutes)", default=60, validators=[DataRequired("How long is it?"), NumberRange(5, 480)])
    price = DecimalField("Price", places=2, default=0, validators=[Optional(), NumberRange(0, 1_000_000)], description="Shown only; there are no payments yet.")
    currency = StringField("Currency", default="USD", validators=[Length(min=3, max=3)], description="ISO 4217 code, e.g. USD, EUR, INR.")
    location_kind = SelectField("Location", choices=[SelectChoice(value, label) for value, label in LOCATION_KINDS.items()], default="video")
    location_detail = StringField("Address or phone number", validators=[Length(max=255)], description="Needed for in-person and phone services.")
    video_provider = SelectField("Video meetings with", choices=[SelectChoice(value, label) for value, label in VIDEO_PROVIDERS.items()],
                                 default="auto", description="For video services only.")
    record_meetings = BooleanField("Record Zoom meetings to the cloud")
    requires_acceptance = BooleanField("I accept each booking myself (requests stay pending until then)")
    buffer_before_min = IntegerField("Buffer before (minutes)", default=0, validators=[Optional(), NumberRange(0, 240)])
    buffer_after_min = IntegerField("Buffer after (minutes)", default=0, validators=[Optional(), NumberRange(0, 240)])
    min_notice_min = IntegerField("Minimum notice (minutes)", default=60, validators=[Optional(), NumberRange(0, 43200)])
    horizon_days = IntegerField("Bookable up to (days ahead)", default=60, validators=[Optional(), NumberRange(1, 366)])
    hidden = BooleanField("Hidden (customers cannot see or book it)")

    def values(self) -> dict:
        """The submitted values as plain data for the service."""
        return {
            "title": self.title.data,
            "slug": self.slug.data,
            "description": self.description.data,
            "duration_min": self.duration_min.data,
            "price": "" if self.price.data is None else str(self.price.data),
            "currency": self.currency.data,
            "location_kind": self.location_kind.data,
            "location_detail": self.location_detail.data,
            "requires_acceptance": self.requires_acceptance.data,
            "video_provider": self.video_provider.data,
            "record_meetings": self.record_meetings.data,
            "buffer_before_min": self.buffer_before_min.data or 0,
            "buffer_after_min": self.buffer_after_min.data or 0,
            "min_notice_min": 0 if self.min_notice_min.data is None else self.min_notice_min.data,
            "horizon_days": self.horizon_days.data or 60,
            "hidden": self.hidden.data,
        }


class WeeklyHoursForm(FlaskForm):
    """One text field per weekday: comma-separated ranges such as "08:00-12:00, 13:00-17:00"."""

    day0 = StringField("Monday")
    day1 = StringField("Tuesday")
    day2 = StringField("Wednesday")
    day3 = StringField("Thursday")
    day4 = StringField("Friday")
    day5 = StringField("Saturday")
    day6 = StringField("Sunday")


class OverrideForm(FlaskForm):
    day = DateField("Date", validators=[DataRequired("Pick a date.")])
    ranges = StringField("Hours that day", description="For example 10:00-14:00. Leave empty for a day off.")


class BookingForm(FlaskForm):
    start = HiddenField(validators=[DataRequired("Pick a time.")])
    tz = HiddenField()
    idempotency_key = HiddenField()
    name = StringField("Your name", validators=[DataRequired("Please enter your name."), Length(max=120)])
    email = EmailField("Email", validators=[DataRequired("Please enter your email."), Length(max=254)])
    phone = StringField("Phone", validators=[Length(max=40)])
    notes = TextAreaField("Notes for the expert", validators=[Length(max=2000)])


class RescheduleForm(FlaskForm):
    start = HiddenField(validators=[DataRequired("Pick a time.")])
    tz = HiddenField()
    reason = StringField("Reason (optional)", validators=[Length(max=1000)])


class CancelForm(FlaskForm):
    reason = StringField("Reason (optional)", validators=[Length(max=1000)])
    view = HiddenField()


class ActionForm(FlaskForm):
    """Accept / decline / hide / delete buttons: only the CSRF token, and which page to answer with."""

    view = HiddenField()
