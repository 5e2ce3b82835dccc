"""The home page and operational endpoints."""
