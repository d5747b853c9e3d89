"""handlers blueprint."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("handlers", __name__)
