"""WSGI entry point: `gunicorn app:app`, `flask --app app ...`."""

from carbon_credits.factory import create_app

app = create_app()
