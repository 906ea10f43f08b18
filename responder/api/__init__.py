"""The analysts' REST API (FastAPI): `responder api`. Stateless; built by `bootstrap.api_app`.

Imports point one way: api → service → stores / commands.
"""
