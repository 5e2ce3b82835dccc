"""Calendar forms. They check shape; the service checks the rest (and asks the server)."""
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length


class CalDAVForm(FlaskForm):
    url = StringField(
        _l("Server address"),
        validators=[DataRequired(_l("Give your CalDAV server's address.")), Length(max=500)],
        description=_l("For example https://caldav.fastmail.com/ or your Nextcloud's https://cloud.example.org/remote.php/dav/"),
    )
    username = StringField(_l("User name"), validators=[DataRequired(_l("Give your user name.")), Length(max=200)])
    password = PasswordField(
        _l("App password"),
        validators=[DataRequired(_l("Give the app password.")), Length(max=500)],
        description=_l("Make an app password for ExpertBook in your provider's settings (iCloud and Fastmail need one). "
                       "It is stored encrypted."),
    )
