"""Webhooks: signed HTTP notifications of clinic and expert events to hospital systems and integrators."""
