"""Structured logs with the portal and lead in context, and secrets masked before output.

Every record passes :class:`SecretMaskingFilter`: values of token-like keys
(``access_token=…``, ``"refresh_token": "…"``, ``auth[application_token]=…``, ``AUTH_ID``…)
are replaced by ``***``, so a token can not reach a log file even through an exception text.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from typing import TextIO

_context: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("b24app_log_ctx")

SECRET_KEYS = (
    "access_token|refresh_token|application_token|client_secret|auth_id|refresh_id|"
    "auth|event_token|password|secret|token"
)
# key=value (query strings, form bodies), "key": "value" (JSON), key[...]=value (PHP forms).
_PATTERNS = [
    re.compile(
        r"(?i)((?:%s)(?:%%5D|\])?(?:\[[a-z_]*\])?(?:%%5B[a-z_]*%%5D)?=)([^&\s'\"]+)" % SECRET_KEYS
    ),
    re.compile(r"(?i)(\"(?:%s)\"\s*:\s*\")([^\"]+)" % SECRET_KEYS),
    re.compile(r"(?i)('(?:%s)'\s*:\s*')([^']+)" % SECRET_KEYS),
]


def mask_secrets(text: str) -> str:
    """Replace the values of token-like keys in ``text`` with ``***``."""
    for pattern in _PATTERNS:
        text = pattern.sub(r"\1***", text)
    return text


class SecretMaskingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_secrets(message)
        if record.exc_info:
            # Render the traceback now, masked, so the handler never formats the raw one.
            record.exc_text = mask_secrets(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        record.msg, record.args = masked, None
        for key, value in _context.get({}).items():
            setattr(record, key, value)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and the bound context."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        payload.update(_context.get({}))
        if record.exc_text:
            payload["exc"] = record.exc_text
        return json.dumps(payload, ensure_ascii=False, default=str)


@contextmanager
def bind(**values: Any) -> Iterator[None]:
    """Add ``member_id=…``, ``lead_id=…`` etc. to every log record inside the block."""
    token = _context.set({**_context.get({}), **values})
    try:
        yield
    finally:
        _context.reset(token)


_configured = False


def make_handler(stream: TextIO | None = None) -> logging.Handler:
    """A handler writing masked JSON lines to ``stream`` (stderr by default)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(SecretMaskingFilter())
    return handler


def configure(level: str = "INFO") -> None:
    """Install the JSON handler and the masking filter on the root logger (once)."""
    global _configured
    root = logging.getLogger()
    if not _configured:
        root.addHandler(make_handler())
        _configured = True
    root.setLevel(level)
    # Filters on the root logger do not see records of child loggers; handlers do. Make sure
    # any handler added by others (pytest's caplog, gunicorn) masks too.
    for handler in root.handlers:
        if not any(isinstance(f, SecretMaskingFilter) for f in handler.filters):
            handler.addFilter(SecretMaskingFilter())
