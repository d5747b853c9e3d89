"""b24app: a Bitrix24 app that keeps service businesses from losing leads."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from typing import TYPE_CHECKING

from b24app.config import InsecureSecret
from b24app.config import require_strong_secrets
from b24app.config import Settings

if TYPE_CHECKING:  # importing b24app must not load Flask (the REST client and jobs don't need it)
    from flask import Flask


def create_app(
    test_config: Mapping[str, Any] | None = None, *, settings: Settings | None = None
) -> Flask:
    """Create the Flask app: settings from ``B24APP_*`` (or ``settings``), services, blueprints.

    ``test_config`` overrides Flask config keys; ``services`` may be passed in it under the key
    ``B24APP_SERVICES`` to share one set of connections with a test.

    :raise InsecureSecret: a default or short ``B24APP_SECRET_KEY``/``B24APP_CLIENT_SECRET``
        (one line on stderr), unless ``settings.allow_weak_secrets``: the check is here, not
        only in the CLI, so ``flask --app b24app run`` or ``gunicorn 'b24app:create_app()'``
        cannot serve pages signed with a public key.
    """
    import sys

    from flask import Flask

    from b24app import context
    from b24app import errors
    from b24app import logs
    from b24app.assistant.views import bp as assistant_bp
    from b24app.handlers.views import bp as handlers_bp
    from b24app.health import bp as health_bp
    from b24app.install.views import bp as install_bp
    from b24app.placements.views import bp as placements_bp
    from b24app.robots.views import bp as robots_bp

    settings = settings or Settings.from_env()
    if not settings.allow_weak_secrets:
        try:
            require_strong_secrets(settings)
        except InsecureSecret as exc:
            print(exc.message, file=sys.stderr)
            raise
    app = Flask(__name__, instance_relative_config=True)
    app.config.from_mapping(
        SECRET_KEY=settings.secret_key,
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
        MAX_FORM_PARTS=2000,
        JSON_AS_ASCII=False,
        B24APP_SETTINGS=settings,
    )
    if test_config:
        app.config.update(test_config)
    services = app.config.get("B24APP_SERVICES") or context.build_services(settings)
    app.extensions["b24app"] = services
    context.set_current(services)

    logs.configure(settings.log_level)
    errors.init_app(app)
    app.register_blueprint(health_bp)
    app.register_blueprint(install_bp, url_prefix="/install")
    app.register_blueprint(handlers_bp, url_prefix="/handlers")
    app.register_blueprint(robots_bp, url_prefix="/robots")
    app.register_blueprint(placements_bp, url_prefix="/app")
    app.register_blueprint(assistant_bp, url_prefix="/assistant")
    return app
