"""The names tests, benches and the demo call on a portal, kept from the days it was one
class: each is one area's own method or state under the name it had (``portal.add_lead`` is
``portal.crm.add_lead``). Code inside the emulator calls the area itself."""

from __future__ import annotations

from typing import Any
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from devportal.bizproc import Bizproc
    from devportal.booking import Bookings
    from devportal.chats import Chats
    from devportal.crm import Crm
    from devportal.eventbus import EventBus
    from devportal.leads import LeadStore
    from devportal.lifecycle import AppLifecycle
    from devportal.openlines import OpenLines
    from devportal.people import People
    from devportal.tasks import Tasks
    from devportal.widgets import Widgets


# State that moved into an area without keeping a short name: reading the old name fails
# loudly, but writing it would only make a stray attribute nothing reads.
MOVED = {
    "events_held": "bus.held", "next_event_id": "bus.next_id",
    "next_placement_id": "widgets.next_placement_id", "next_status_id": "crm.next_status_id",
    "next_userfield_id": "crm.next_userfield_id", "next_activity_id": "crm.next_activity_id",
    "next_contact_id": "crm.next_contact_id", "user_options": "app.user_options",
    "departments": "people.departments", "crm_read_all": "people.crm_read_all",
    "robot_calls": "bizproc.robot_calls", "deal_categories": "crm.deal_categories",
    "userfields": "crm.userfields", "contacts": "crm.contacts",
}  # fmt: skip


class Shortcuts:
    """Mixed into :class:`devportal.portal.Portal`, which holds the areas."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in MOVED:
            raise AttributeError(f"portal.{name} is portal.{MOVED[name]}")
        super().__setattr__(name, value)

    people: People
    app: AppLifecycle
    bus: EventBus
    crm: Crm
    booking: Bookings
    chats: Chats
    tasks_area: Tasks  # ``portal.tasks`` is the list of tasks (below)
    bizproc: Bizproc
    widgets: Widgets

    def _bind_shortcuts(self) -> None:
        """The areas' methods under their old names (bound: signatures and docs hold)."""
        self.add_user = self.people.add_user
        self.is_admin = self.people.is_admin
        self.grant_crm_read = self.people.grant_crm_read
        self.may_read = self.people.may_read
        self.install = self.app.install
        self.prepare_install = self.app.prepare_install
        self.send_install_event = self.app.send_install_event
        self.finish_install = self.app.finish_install
        self.update_app = self.app.update_app
        self.uninstall = self.app.uninstall
        self.event_deliveries = self.bus.deliveries
        self.send_events = self.bus.send
        self.event_auth = self.bus.auth
        self.add_lead = self.crm.add_lead
        self.update_lead = self.crm.update_lead
        self.delete_lead = self.crm.delete_lead
        self.add_deal = self.crm.add_deal
        self.update_deal = self.crm.update_deal
        self.delete_deal = self.crm.delete_deal
        self.lead = self.crm.lead
        self.deal = self.crm.deal
        self.deal_of_lead = self.crm.deal_of_lead
        self.convert_lead = self.crm.convert_lead
        self.set_crm_mode = self.crm.set_crm_mode
        self.add_contact = self.crm.add_contact
        self.add_lead_field = self.crm.add_lead_field
        self.add_activity = self.crm.add_activity
        self.bulk_create_leads = self.crm.bulk_create_leads
        self.status_semantics = self.crm.status_semantics
        self.lead_status_ids = self.crm.lead_status_ids
        self.uf_names = self.crm.uf_names
        self.add_booking = self.booking.add_booking
        self.move_booking = self.booking.move_booking
        self.delete_booking = self.booking.delete_booking
        self.open_chat = self.chats.open_chat
        self.tick_task_item = self.tasks_area.tick
        self.complete_task = self.tasks_area.complete_task
        self.client_writes = self.chats.client_writes
        self.operator_writes = self.chats.operator_writes
        self.employee_posts = self.chats.employee_posts
        self.message_events = self.chats.message_events
        self.chat_messages = self.chats.chat_messages
        self.run_robot = self.bizproc.run_robot
        self.robot_result = self.bizproc.robot_result
        self.expire_event_token = self.bizproc.expire_event_token
        self.frame_payload = self.widgets.frame_payload
        self.placement_binding = self.widgets.placement_binding
        self.open_placement = self.widgets.open_placement
        self.open_app = self.widgets.open_app

    # -- state (read through the area that owns it) ---------------------------------------------

    @property
    def users(self) -> dict[int, dict[str, Any]]:
        return self.people.users

    @property
    def notifications(self) -> list[dict[str, Any]]:
        return self.people.notifications

    @property
    def tasks(self) -> list[dict[str, Any]]:
        return self.people.tasks

    @property
    def installed(self) -> bool:
        return self.app.installed

    @property
    def install_finished(self) -> bool:
        return self.app.install_finished

    @property
    def version(self) -> str:
        return self.app.version

    @property
    def application_token(self) -> str:
        return self.app.application_token

    @property
    def install_event_url(self) -> str | None:
        return self.app.install_event_url

    @property
    def options(self) -> dict[str, Any]:
        return self.app.options

    @property
    def events(self) -> list[dict[str, Any]]:
        """The app's event bindings."""
        return self.bus.bindings

    @property
    def skipped_deliveries(self) -> list[tuple[str, str]]:
        return self.bus.skipped

    @property
    def leads(self) -> LeadStore:
        return self.crm.leads

    @property
    def deals(self) -> LeadStore:
        return self.crm.deals

    @property
    def statuses(self) -> dict[int, dict[str, Any]]:
        return self.crm.statuses

    @property
    def activities(self) -> dict[int, dict[str, Any]]:
        return self.crm.activities

    @property
    def deal_userfields(self) -> dict[int, dict[str, Any]]:
        return self.crm.deal_userfields

    @property
    def crm_mode(self) -> int:
        return self.crm.crm_mode

    @property
    def timeline_comments(self) -> list[dict[str, Any]]:
        return self.crm.timeline_comments

    @property
    def openlines(self) -> OpenLines:
        return self.chats.lines

    @property
    def robots(self) -> dict[str, dict[str, Any]]:
        return self.bizproc.robots

    @property
    def robot_results(self) -> dict[str, dict[str, Any]]:
        return self.bizproc.robot_results

    @property
    def workflow_templates(self) -> list[dict[str, Any]]:
        return self.bizproc.workflow_templates

    @property
    def workflows(self) -> list[dict[str, Any]]:
        return self.bizproc.workflows

    @property
    def placements(self) -> list[dict[str, Any]]:
        return self.widgets.placements

    @property
    def frame_messages(self) -> list[dict[str, Any]]:
        return self.widgets.frame_messages
