"""Account forms. They check shape; the service checks the rules and has the last word."""
from flask_wtf import FlaskForm
from wtforms import EmailField, HiddenField, PasswordField, StringField
from wtforms.validators import DataRequired, EqualTo, Length

from expertbook.auth.service import MAX_PASSWORD, MIN_PASSWORD
from expertbook.notifications.forms import HeaderSafeName


class RegisterForm(FlaskForm):
    # The name goes into email headers (To: "Name" <address>): line breaks are refused, not folded.
    name = StringField("Full name", validators=[DataRequired("Please enter your name."), Length(max=120), HeaderSafeName()])
    email = EmailField("Email", validators=[DataRequired("Please enter your email."), Length(max=254)])
    password = PasswordField(
        "Password",
        validators=[DataRequired("Please choose a password."), Length(min=MIN_PASSWORD, max=MAX_PASSWORD)],
        description=f"At least {MIN_PASSWORD} characters.",
    )
    confirm = PasswordField("Repeat password", validators=[EqualTo("password", "The passwords do not match.")])
    next = HiddenField()


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired("Please enter your email.")])
    password = PasswordField("Password", validators=[DataRequired("Please enter your password.")])
    next = HiddenField()


class ChangePasswordForm(FlaskForm):
    current_password = PasswordField("Current password", validators=[DataRequired("Please enter your current password.")])
    new_password = PasswordField(
        "New password", validators=[DataRequired("Please choose a new password."), Length(min=MIN_PASSWORD, max=MAX_PASSWORD)]
    )
