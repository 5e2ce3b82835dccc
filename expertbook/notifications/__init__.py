"""Notifications: a transactional outbox of emails, delivered by an RQ worker (or in-process without Redis)."""
