"""Automation of an emulated portal: the robots the app registered (``bizproc.robot.*``),
their runs waiting for ``bizproc.event.send``, and workflow templates and started workflows
(``bizproc.workflow.*``)."""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from typing import TYPE_CHECKING

from devportal.rest.workflows import default_templates

if TYPE_CHECKING:
    from devportal.portal import Portal


@dataclass
class RobotCall:
    """A robot run waiting for ``bizproc.event.send``."""

    event_token: str
    code: str
    lead_id: int
    properties: dict[str, Any]
    use_subscription: str
    expires_at: float
    used: bool = False
    return_values: dict[str, Any] | None = None
    log_message: str | None = None
    logs: list[str] = field(default_factory=list)
    sent_at: float | None = None


def _event_token() -> tuple[str, str]:
    """(workflow id, event token) shaped as Bitrix24's (``<workflow>|<activity>|<sign>``)."""
    workflow_id = f"{secrets.token_hex(7)}.{secrets.randbelow(10**8):08d}"
    activity = "A" + "_".join(str(secrets.randbelow(90000) + 10000) for _ in range(4))
    signature = (
        secrets.token_urlsafe(24)[:32] + "." + hashlib.sha256(secrets.token_bytes(16)).hexdigest()
    )
    return workflow_id, f"{workflow_id}|{activity}|{signature}"


class Bizproc:
    """Robots, robot runs and workflows of one portal."""

    def __init__(self, portal: Portal) -> None:
        self.portal = portal
        self.robots: dict[str, dict[str, Any]] = {}
        self.robot_calls: dict[str, RobotCall] = {}
        self.workflow_templates: list[dict[str, Any]] = default_templates()
        self.workflows: list[dict[str, Any]] = []

    def run_robot(
        self,
        code: str,
        lead_id: int,
        properties: dict[str, Any] | None = None,
        *,
        user_id: int | None = None,
        timeout_duration: int = 660,
        entity: str = "lead",
    ) -> str:
        """An automation rule reaches the robot: POST its HANDLER; returns ``event_token``.

        The POST goes through the delivery queue (call ``emu.wait_idle()``), then
        :meth:`robot_result` shows what the app sent back with ``bizproc.event.send``.
        """
        p = self.portal
        with p.lock:
            if not p.app.install_finished:
                raise RuntimeError("the app is not installed (installFinish) on this portal")
            robot = self.robots.get(code)
            if robot is None:
                raise KeyError(f"no robot {code!r} registered")
            workflow_id, event_token = _event_token()
            use_subscription = "N" if robot.get("USE_SUBSCRIPTION") == "N" else "Y"
            self.robot_calls[event_token] = RobotCall(
                event_token, code, lead_id, dict(properties or {}), use_subscription,
                time.time() + timeout_duration,
            )  # fmt: skip
            auth_user = int(robot.get("AUTH_USER_ID") or 0) or user_id or p.admin_user_id
            document = (
                ("CCrmDocumentLead", "LEAD") if entity == "lead" else ("CCrmDocumentDeal", "DEAL")
            )
            data = {
                "workflow_id": workflow_id,
                "code": code,
                "document_id": ["crm", document[0], f"{document[1]}_{lead_id}"],
                "document_type": ["crm", document[0], document[1]],
                "event_token": event_token,
                "properties": dict(properties or {}),
                "use_subscription": use_subscription,
                "timeout_duration": str(timeout_duration),
                "ts": str(int(time.time())),
                "auth": self._robot_auth(auth_user),
            }
            handler = robot["HANDLER"]
        p.bus.queue("robot", code, handler, data)
        return event_token

    def _robot_auth(self, user_id: int) -> dict[str, str]:
        """``auth`` of a robot call: the user's event tokens plus ``user_id``."""
        p = self.portal
        pair = p.bus.pair(user_id)
        return {
            "access_token": pair.access_token,
            "refresh_token": pair.refresh_token,
            "expires": str(int(pair.expires_at)),
            "server_endpoint": p.server_endpoint,
            "client_endpoint": p.client_endpoint,
            "scope": p.scope,
            "status": p.app_status,
            "application_token": p.app.application_token,
            "expires_in": str(pair.expires_in(time.time())),
            "domain": p.domain,
            "member_id": p.member_id,
            "user_id": str(user_id),
        }

    def robot_result(self, event_token: str) -> dict[str, Any] | None:
        """What the app sent for this run: ``{"return_values", "log_message", "logs"}``."""
        with self.portal.lock:
            call = self.robot_calls.get(event_token)
            if call is None or not call.used:
                return None
            return {
                "return_values": call.return_values,
                "log_message": call.log_message,
                "logs": list(call.logs),
            }

    def expire_event_token(self, event_token: str) -> None:
        with self.portal.lock:
            self.robot_calls[event_token].expires_at = 0

    @property
    def robot_results(self) -> dict[str, dict[str, Any]]:
        """Every answered robot run by event token."""
        with self.portal.lock:
            return {
                t: {"code": c.code, "lead_id": c.lead_id, "return_values": c.return_values,
                    "log_message": c.log_message, "logs": list(c.logs)}
                for t, c in self.robot_calls.items()
                if c.used
            }  # fmt: skip
