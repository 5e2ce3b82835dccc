"""Clinics: hospitals and their staff, doctor slots, token-numbered appointments."""
