"""Video meetings: Jitsi rooms by default, Zoom over OAuth for experts who connect it.

The booking code calls :mod:`expertbook.video.service` (``create_meeting``, ``update_meeting``,
``delete_meeting``, ``fresh_start_url``) and handles the errors of :mod:`expertbook.video.errors`.
"""
