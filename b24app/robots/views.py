"""robots blueprint."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("robots", __name__)
