"""Experts: profiles, services, weekly hours, time-slot bookings."""
