"""Accounts: registration, login, sessions, the profile page and roles."""
