"""WSGI entry point for gunicorn: ``gunicorn b24app.wsgi:app``."""

from b24app import create_app

app = create_app()
