"""install blueprint."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("install", __name__)
