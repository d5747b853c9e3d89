"""WSGI entry point for gunicorn: ``gunicorn b24app.wsgi:app``.

Refuses to load with a default or short ``B24APP_SECRET_KEY`` / ``B24APP_CLIENT_SECRET``.
"""

import sys

from b24app import create_app
from b24app.config import InsecureSecret
from b24app.config import require_strong_secrets
from b24app.config import Settings

settings = Settings.from_env()
try:
    require_strong_secrets(settings)
except InsecureSecret as exc:
    print(exc.message, file=sys.stderr)
    raise

app = create_app(settings=settings)
