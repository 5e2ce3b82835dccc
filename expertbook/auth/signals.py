"""Account events other areas subscribe to, so that ``auth`` never imports an area.

Sent INSIDE the account change's transaction, with the application as sender; receivers write only
through ``db.session`` (their rows commit with the change) and defer side effects with ``after_commit``::

    from expertbook.auth.signals import email_verified

    @email_verified.connect
    def publish(app, user_id: int) -> None: ...
"""
from blinker import Namespace

_signals = Namespace()

#: A user showed that their email address is theirs (kwarg ``user_id``): what waited for it may be
#: published. Also sent when a user whose address is verified becomes a hospital's staff admin.
email_verified = _signals.signal("auth.email-verified")
