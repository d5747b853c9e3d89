"""placements blueprint."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("placements", __name__)
