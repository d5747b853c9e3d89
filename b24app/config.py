"""Configuration: one typed settings object read from ``B24APP_*`` environment variables.

Flask and the RQ worker both build their services from the same :class:`Settings`, so the
domain code never reads ``os.environ`` or ``flask.current_app`` itself.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from typing import Any

ENV_PREFIX = "B24APP_"


def _default_database_url() -> str:
    # An SQLite file in the working directory is the embedded default; PostgreSQL in production.
    return "sqlite:///" + os.path.abspath("b24app.sqlite")


@dataclass(frozen=True)
class Settings:
    """Everything the app needs to run; every field can be set as ``B24APP_<NAME>``."""

    client_id: str = "local.b24app"
    client_secret: str = "change-me"
    # Public https base URL that Bitrix24 calls: handler, robot and placement URLs are built from it.
    public_url: str = "http://127.0.0.1:5000"
    database_url: str = field(default_factory=_default_database_url)
    redis_url: str = "redis://127.0.0.1:6379/0"
    secret_key: str = "dev-secret-change-me"
    # Fernet keys (urlsafe base64, 32 bytes), comma-separated, newest first; derived from
    # ``secret_key`` when empty. Several keys allow rotation: old rows stay readable.
    encryption_keys: str = ""
    # Largest request body accepted from outside (events, robots, placements), in bytes.
    max_body_bytes: int = 256 * 1024
    # Outbound REST: per-request timeout (seconds) and leaky bucket (requests/s, burst).
    rest_timeout: float = 30.0
    rest_rate: float = 2.0
    rest_burst: int = 50
    rest_max_retries: int = 6
    # Enterprise plans get a bigger bucket; a portal's plan is read from its licence daily.
    rest_rate_enterprise: float = 5.0
    rest_burst_enterprise: int = 250
    # Share of the bucket bulk reads may not use (kept for robot answers and SLA sends).
    rest_bulk_reserve: float = 0.2
    # A method's server-time budget per 10 minutes (``time.operating``; 480 s in the docs).
    rest_operating_limit: float = 480.0
    # Fetch waiting lead events of a portal together (off = one request per event) and
    # give urgent calls priority in the bucket (off = first come, first served).
    rest_coalesce: bool = True
    rest_priorities: bool = True
    # After QUERY_LIMIT_EXCEEDED assume the portal's shared bucket full (off = blind back-off).
    rest_adaptive: bool = True
    # Days a REST request/response log row is kept (the marketplace asks for at least 3).
    rest_log_days: int = 7
    # Allow plain-http loopback endpoints (the portal emulator); never in production.
    allow_insecure_endpoints: bool = False
    # Let the app factory start with a default or short ``secret_key``/``client_secret``:
    # a throwaway local run only (the test suite and the demo make strong ones instead).
    allow_weak_secrets: bool = False
    # OAuth servers whose word we trust about an install (comma-separated ``server_endpoint``s):
    # the installer POST and ONAPPINSTALL are verified against ``app.info`` there, never
    # against the DOMAIN or endpoint the request names.
    oauth_servers: str = "https://oauth.bitrix.info/rest/,https://oauth.bitrix24.tech/rest/"
    queue_prefix: str = ""
    # Bearer token for ``GET /metrics`` (``Authorization: Bearer …``); empty = /metrics is 404.
    metrics_token: str = ""
    log_level: str = "INFO"
    # Optional OpenAI-compatible qualifier (off unless a key is set).
    llm_api_url: str = ""
    llm_api_key: str = ""
    llm_model: str = "gpt-4o-mini"
    # The assistant's model call (when a portal enables it): short, to keep answers under 3 s.
    assistant_llm_timeout: float = 1.2

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read ``B24APP_*`` variables (typed by the field defaults), then apply ``overrides``."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is None:
                continue
            values[f.name] = _coerce(raw, type(getattr(cls(), f.name)))
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def replace(self, **changes: Any) -> Settings:
        """Return a copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    @property
    def trusted_oauth_servers(self) -> tuple[str, ...]:
        return tuple(u.strip() for u in self.oauth_servers.split(",") if u.strip())

    @property
    def queue_names(self) -> tuple[str, ...]:
        """RQ queues in priority order: the assistant's answers, then timers (a due SLA reminder
        must not wait behind an import's event jobs), events, then bulk work."""
        return tuple(
            self.queue_prefix + q for q in ("assistant", "timers", "events", "default", "bulk")
        )


MIN_SECRET_LENGTH = 32
# Values that are public (this source code, the README, the demo): never a real secret.
KNOWN_DEFAULTS = frozenset(
    {Settings.client_secret, Settings.secret_key, "demo-secret", "secret", "changeme"}
)
GENERATE_HINT = 'python -c "import secrets; print(secrets.token_urlsafe(48))"'


class InsecureSecret(SystemExit):
    """A secret is a default or too short: the process must not start (exit status 2)."""

    def __init__(self, message: str) -> None:
        super().__init__(2)
        self.message = message

    def __str__(self) -> str:
        return self.message


def weak_secrets(settings: Settings) -> list[str]:
    """The ``B24APP_*`` secrets that are a known default or shorter than 32 characters."""
    weak = []
    for name in ("secret_key", "client_secret"):
        value = str(getattr(settings, name))
        if value in KNOWN_DEFAULTS or len(value) < MIN_SECRET_LENGTH:
            weak.append(ENV_PREFIX + name.upper())
    return weak


def require_strong_secrets(settings: Settings) -> None:
    """Refuse to run the app (:func:`b24app.create_app`, so ``flask run`` and any WSGI server
    too), ``serve``/``worker``/``cron`` with a default or short secret.

    With the default ``B24APP_SECRET_KEY`` anyone could sign admin page sessions and decrypt
    the stored tokens; the demo and the test suite pass their own settings instead.

    :raise InsecureSecret: with a one-line message naming the variable and how to make one.
    """
    weak = weak_secrets(settings)
    if weak:
        raise InsecureSecret(
            f"refusing to start: {weak[0]} is a default or shorter than {MIN_SECRET_LENGTH}"
            f" characters; set it to a random value, e.g. {GENERATE_HINT}"
        )


def _coerce(raw: str, kind: type) -> Any:
    if kind is bool:
        return raw.strip().lower() in {"1", "true", "yes", "on"}
    if kind is int:
        return int(raw)
    if kind is float:
        return float(raw)
    return raw
