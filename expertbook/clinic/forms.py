"""Clinic forms. They check shape; the service checks the rules and has the last word."""
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateField,
    EmailField,
    FieldList,
    Form,
    FormField,
    HiddenField,
    IntegerField,
    PasswordField,
    SelectChoice,
    SelectMultipleField,
    StringField,
    TextAreaField,
    TimeField,
)
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional
from wtforms.widgets import CheckboxInput, ListWidget

from expertbook.auth.service import MAX_PASSWORD, MIN_PASSWORD
from expertbook.notifications.forms import HeaderSafeName
from expertbook.web import MAX_ID

WEEKDAYS = [SelectChoice(str(i), label) for i, label in enumerate(("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"))]


class DoctorRowForm(Form):
    """One doctor row of the slot form (a plain Form: the outer form carries the CSRF token): a doctor
    picked from the directory (``doctor_id``, a select the template fills), or a new one by name and
    specialization, which is added to the directory."""

    doctor_id = StringField("Doctor")
    name = StringField("New doctor's name", validators=[Length(max=120)])
    specialization = StringField("Specialization", validators=[Length(max=120)])

    def choice(self) -> int | tuple[str | None, str | None]:
        """The directory id chosen, or the (name, specialization) typed in."""
        chosen = (self.doctor_id.data or "").strip()
        return int(chosen) if chosen.isdigit() else (self.name.data, self.specialization.data)


class MultiCheckboxField(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class SlotForm(FlaskForm):
    # No max_entries: WTForms would silently drop the extra rows; the service refuses too many with a message.
    doctors = FieldList(FormField(DoctorRowForm), min_entries=1)
    date = DateField("Date", validators=[InputRequired("Please choose a date.")])
    start_time = TimeField("Starts", validators=[InputRequired("Please enter a start time.")])
    end_time = TimeField("Ends", validators=[InputRequired("Please enter an end time.")])
    capacity = IntegerField("Places (patients)", default=10, validators=[InputRequired("Please enter how many patients can book.")])
    repeat_until = DateField("Repeat until (optional)", validators=[Optional()], description="Leave empty for a single date.")
    weekdays = MultiCheckboxField("On these days", choices=WEEKDAYS, validators=[Optional()], description="None ticked means every day.")


class BookingForm(FlaskForm):
    patient_name = StringField("Patient's name", validators=[InputRequired("Please enter the patient's name."), Length(max=120)])
    contact_number = StringField(
        "Contact number", validators=[InputRequired("Please enter a contact number.")], description="10 digits, e.g. 9876543210."
    )
    booking_key = HiddenField()


class CapacityForm(FlaskForm):
    capacity = IntegerField("Places", validators=[InputRequired("Please enter the number of places.")])


class HospitalRegisterForm(FlaskForm):
    hospital_name = StringField("Hospital name", validators=[DataRequired("Please enter the hospital's name."), Length(max=120)])
    location = StringField("Location (city or area)", validators=[DataRequired("Please enter the location."), Length(max=120)])
    name = StringField("Your full name", validators=[DataRequired("Please enter your name."), Length(max=120), HeaderSafeName()])
    email = EmailField("Your work email", validators=[DataRequired("Please enter your email."), Length(max=254)])
    password = PasswordField(
        "Password", validators=[DataRequired("Please choose a password."), Length(min=MIN_PASSWORD, max=MAX_PASSWORD)]
    )


class AddStaffForm(FlaskForm):
    email = EmailField("Their account email", validators=[DataRequired("Please enter an email."), Length(max=254)])
    make_admin = BooleanField("Also a staff admin (can add staff)")


class WalkInForm(FlaskForm):
    patient_name = StringField("Patient's name", validators=[InputRequired("Please enter the patient's name."), Length(max=120)])
    contact_number = StringField("Contact number", validators=[InputRequired("Please enter a contact number.")], description="10 digits.")
    email = StringField("Email (optional)", validators=[Optional(), Length(max=254)], description="For the token, and any change, in writing.")


class ReasonForm(FlaskForm):
    reason = StringField("Reason", validators=[InputRequired("Please give a reason; the patients are told it."), Length(max=300)])


class MoveForm(FlaskForm):
    # An id the database cannot hold names no session (and must not reach a query).
    slot_id = IntegerField("Session", validators=[InputRequired("Choose a session."), NumberRange(1, MAX_ID, "Choose a session.")])


class DoctorForm(FlaskForm):
    name = StringField("Name", validators=[InputRequired("Please enter the doctor's name."), Length(max=120)])
    specialization = StringField("Specialization", validators=[InputRequired("Please enter the specialization."), Length(max=120)])
    bio = TextAreaField("Short bio (optional)", validators=[Length(max=500)])
    active = BooleanField("Active (offered for new sessions)", default=True)
