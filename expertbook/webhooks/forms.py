"""The webhook subscription form: where to send, which events, a note for the owner, paused or not."""
from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, SelectMultipleField, StringField
from wtforms.validators import Length
from wtforms.widgets import CheckboxInput, ListWidget

from expertbook.webhooks import events


class CheckboxesField(SelectMultipleField):
    """Several choices as a list of checkboxes (every choice is readable at a glance on a phone)."""

    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()

    def pre_validate(self, form) -> None:
        # The service says which events this owner may choose, with its own message.
        pass


class SubscriptionForm(FlaskForm):
    url = StringField(_l("Endpoint URL"), description=_l("An https:// address of your system that accepts POST requests."))
    events = CheckboxesField(_l("Events to send"), choices=[])
    description = StringField(_l("Description (optional)"), validators=[Length(max=200)],
                              description=_l("For you and your colleagues, e.g. which system this is."))
    active = BooleanField(_l("Active (untick to pause: events wait and are sent when you resume)"), default=True)

    def for_owner(self, owner_kind: str) -> SubscriptionForm:
        """Offer the events of a hospital's or an expert's subscription."""
        self.events.choices = [(event.name, f"{event.name}: {event.label}") for event in events.events_for(owner_kind)]
        return self
