"""Robots registered at install with ``bizproc.robot.add`` (HANDLER is added by the installer
as ``{PUBLIC_URL}/robots/<CODE>``). Names, descriptions and labels in Russian and English."""

from __future__ import annotations

from typing import Any

LEAD_DOCUMENT_TYPE = ["crm", "CCrmDocumentLead", "LEAD"]

# Filled by the robots surface: each item is the bizproc.robot.add fields minus HANDLER.
ROBOTS: list[dict[str, Any]] = []
