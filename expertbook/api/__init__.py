"""The JSON API: bearer tokens, JSON errors and the OpenAPI description. Areas add their endpoints here."""
