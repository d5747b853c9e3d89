"""WSGI entry point for gunicorn: ``gunicorn b24app.wsgi:app``.

Refuses to load with a default or short ``B24APP_SECRET_KEY`` / ``B24APP_CLIENT_SECRET``
(the check is :func:`b24app.create_app`'s own).
"""

from b24app import create_app

app = create_app()
