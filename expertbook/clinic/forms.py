"""Clinic forms. They check shape; the service checks the rules and has the last word."""
from flask_wtf import FlaskForm
from wtforms import DateField, FieldList, Form, FormField, HiddenField, IntegerField, SelectChoice, SelectMultipleField, StringField, TimeField
from wtforms.validators import InputRequired, Length, Optional
from wtforms.widgets import CheckboxInput, ListWidget

WEEKDAYS = [SelectChoice(str(i), label) for i, label in enumerate(("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"))]


class DoctorRowForm(Form):
    """One doctor row of the slot form (a plain Form: the outer form carries the CSRF token)."""

    name = StringField("Doctor's name", validators=[Length(max=120)])
    specialization = StringField("Specialization", validators=[Length(max=120)])


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

