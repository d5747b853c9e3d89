"""devportal — a faithful Bitrix24 portal emulator on loopback, for tests, benchmarks and
the local demo. It is a real HTTP server (werkzeug, threaded, background thread).

Python API
==========

::

    from devportal import DevPortal

    with DevPortal(client_id="local.test.app", client_secret="test-client-secret",
                   app_base_url="http://127.0.0.1:5000", rate=2, burst=50) as emu:
        portal = emu.create_portal("salon", lang="ru", time_zone="Europe/Moscow")
        result = portal.install()                 # installer POST + ONAPPINSTALL
        lead_id = portal.add_lead({"TITLE": "Стрижка", "SOURCE_ID": "CALL"})
        emu.wait_idle()                           # queued event deliveries answered
        emu.deliveries(kind="event", name="ONCRMLEADADD", portal=portal)
        emu.calls(method="event.bind", portal=portal)

``DevPortal(client_id, client_secret, app_base_url, *, rate=2.0, burst=50, host="127.0.0.1",
port=0, delivery_workers=4, robot_delivery_workers=2, delivery_timeout=10.0,
access_ttl=3600)``
    ``start()``/``stop()`` or ``with``; ``url``, ``host`` (``127.0.0.1:<port>``, the DOMAIN
    of every portal), ``port``, ``server_endpoint``, ``token_url``, ``app_url(path)``;
    ``create_portal(slug, **options) -> Portal``, ``portal(slug)``,
    ``portal_by_member(member_id)``; observation: ``calls(method=None, portal=None, *,
    error=None, in_batch=None) -> list[CallRecord]``, ``http_requests(portal=None)``,
    ``token_refreshes(portal=None)``, ``deliveries(kind=None, name=None, portal=None) ->
    list[DeliveryRecord]``, ``wait_idle(timeout=10)``; faults: ``inject_fault(kind, *,
    count=None, seconds=None, portal=None, method=None, hang_seconds=65)`` with kinds
    ``query_limit`` (503), ``operation_time_limit`` (429), ``internal_error`` (500),
    ``expired_token``/``invalid_token`` (401), ``overload`` (503), ``hang``;
    ``faults.clear()``. Delivery switches on ``emu.delivery``: ``mode = "async" | "sync" |
    "drop"``, ``duplicate = True``, ``hold()`` / ``release(order="fifo"|"reverse"|
    "shuffle")``, ``drop_next(n)``.

``emu.create_portal(slug, *, lang="ru", time_zone="Europe/Moscow", admin_user_id=1,
users=None, departments=None, app_status="L", license="ru_pro", scope=..., rate, burst)``
    Default users: 1 admin (head of department 1), 2–4 non-admin managers (department 2,
    head = 4). ``portal.member_id``, ``domain``, ``client_endpoint``, ``server_endpoint``,
    ``application_token``, ``installed``, ``install_finished``.

Portal actions
    ``install(installer_path="/install/", event_handler_path="/install/events", *,
    finish_install=True, event_first=False, user_id=None, version="1", lang=None) ->
    InstallResult(installer, event, finished)``; ``finish_install()``;
    ``update_app(version)``; ``uninstall(clean=True)``;
    ``add_lead(fields, *, by_user=1, created_at=None, events=True) -> id`` (``by_user=None``
    = automation: event without tokens); ``update_lead(id, fields, *, by_user=1, at=None)``;
    ``delete_lead(id)``; ``lead(id)``; ``add_activity(lead_id, *, kind="call"|"email"|
    "meeting"|"task", direction="outgoing"|"incoming", by_user=1, subject="",
    completed=True, at=None) -> id``; ``bulk_create_leads(n, *, status_id, source_id,
    assigned_by_id, start, step_seconds, fields) -> ids`` (no events; values may be
    callables of the index); ``run_robot(code, lead_id, properties=None, *, user_id=None,
    timeout_duration=660) -> event_token``; ``robot_result(event_token)``;
    ``expire_event_token(token)``; ``open_placement(code, options=None, *, user_id=None,
    lang=None, handler=None) -> requests.Response``; ``open_app(path="/app/", ...)``;
    ``page_url("install" | "app" | "placement/CRM_LEAD_DETAIL_TAB")`` for a browser;
    tokens: ``tokens_for(user_id)``, ``authorization_code(user_id)``, ``expire_tokens()``,
    ``revoke_grant()``.

Inspectable state, per area (docs/emulator.md, "Layout"): ``portal.people``
(``users``, ``notifications``, ``tasks``), ``portal.app`` (``application_token``,
``install_finished``, ``options``), ``portal.bus`` (``bindings``, ``skipped``),
``portal.crm`` (``leads``, ``deals``, ``statuses``, ``userfields``, ``stage_history``,
``activities``, ``timeline_comments``), ``portal.booking``, ``portal.chats`` (``lines``),
``portal.imbot``, ``portal.bizproc`` (``robots``, ``robot_calls``, ``robot_results`` by event
token, ``workflows``), ``portal.widgets`` (``placements``, ``frame_messages``: what the
browser frame sent). The actions above and the most used state keep their short names on
the portal (``devportal/src/devportal/shortcuts.py``).

Behaviour and the assumptions where the docs are silent
=======================================================

* DOMAIN of every portal is ``127.0.0.1:<port>`` (browsers must frame it; ``*.localhost``
  does not resolve here); ``PROTOCOL=0``. Each portal's REST is ``/<slug>/rest/``; the
  b24jssdk in a frame calls ``http://DOMAIN/rest/…``, which the emulator serves by finding
  the portal from the token. REST answers carry ``Access-Control-Allow-Origin: *``.
* OAuth: refresh rotates — the old refresh **and** access token die at once (docs silent;
  strictest reading). Unknown/rotated token → 401 ``invalid_token``; token of another
  portal or missing → 401 ``NO_AUTH_FOUND``; expired → 401 ``expired_token``. Error bodies
  copy the fixtures (``{"error": "invalid_grant"}``, HTTP 400). The refresh response's
  ``domain`` is the OAuth host (= ``127.0.0.1:<port>`` here).
* Lists: 50 per page, ``total`` and ``next``. With ``start=-1`` the answer has **no**
  ``total`` and no ``next``; page by ``>ID`` and stop at a short page. Ordering by ID (or
  none) with ``>ID`` is O(page). Default order is ID ascending.
* ``crm.lead.get`` not found → HTTP 400 ``{"error": "", "error_description": "Not found"}``
  (docs say only "40x"). ``crm.item.*`` not found → 400 ``NOT_FOUND`` "Element not found".
* ``crm.lead.list`` select: none/``*`` = standard fields, ``UF_*`` adds user fields,
  multifields only when named. ``crm.item`` UF names: ``UF_CRM_AB_CD`` → ``ufCrmAbCd``,
  digit parts keep the underscore (``ufCrm_1720…``).
* Stage history IDs/TYPE_ID/OWNER_ID are numbers. A lead created gets TYPE_ID 1; a status
  change TYPE_ID 2, or 3 when the new status is final (S/F). Status SEMANTICS: the success
  status is ``S``; statuses sorted after it are ``F``.
* ``placement.bind`` duplicate (same placement + handler) → 400 ``ERROR_CORE`` "Unable to
  set placement handler: Handler already binded" (docs name no code; community reports);
  unknown placement → ``ERROR_PLACEMENT_NOT_FOUND`` with HTTP 200 (documented).
  ``placement.unbind`` counts 2 per removed handler (documented).
* ``event.bind`` duplicates are the same event + handler + auth_type + type.
* ``bizproc.robot.add`` HANDLER / PLACEMENT_HANDLER must have the same host:port as
  ``app_base_url``. ``bizproc.event.send`` with an unknown, expired (``timeout_duration``
  seconds), already used token, or for a robot with ``USE_SUBSCRIPTION=N`` → 403
  ``ACCESS_DENIED`` "Access denied!".
* Events: delivered by a background "queue server" (4 threads) after the change, never
  retried. Robot calls have their own lane (2 threads, ``robot_delivery_workers``): in
  Bitrix24 the business-process engine calls a robot's handler when the workflow reaches
  it, independently of the event queue, so an import's event backlog does not delay them
  [assumption: the docs do not describe the robot call's transport]. Bot events
  (``ONIMBOT*``) stay on the event lane (the docs say so for v1); placements and app pages
  are POSTed at once by the opening "browser". ``emu.delivery.routes = {}`` puts robots
  back on the event lane; not delivered (recorded in ``skipped_deliveries``) before install finish. Event
  ``auth`` carries the triggering user's token pair (one pair per user, renewed near
  expiry), or no tokens when ``by_user=None``; a binding's non-zero ``auth_type`` picks the
  user. REST changes by the app fire events too (the app must avoid loops).
  ``ONCRMACTIVITYADD`` also fires for ``crm.activity.todo.add``.
* Install: ``finish_install=True`` is a shortcut for the installer page's JS
  ``installFinish()`` — the app counts as installed once the installer answered 200.
  ``installer_path=None`` = API-only app, installed at once. The browser page
  ``/<slug>/page/install`` does it for real through the frame protocol.
  ``ONAPPUNINSTALL``/``ONAPPUPDATE`` go to handlers bound for them, else to the install
  event handler URL. Uninstall drops bindings/robots/placements and every token;
  ``app.option`` survives unless ``clean``. A new install gets a new ``application_token``.
* Limits: leaky bucket per portal (``rate``/s drain, ``burst``), refused requests do not
  fill it; ``batch`` is one request. Faults aimed at a ``method`` also hit that method inside
  a ``batch`` (as a per-command error). ``hang`` waits ``hang_seconds`` (or until stop) and
  then answers 504.
* Booking resources' slot settings (``booking.v1.resource.slots.list/set/unset``, shapes of
  the docs and of the Russian docs' method spec): ``set`` replaces the ranges (replace vs append is
  silent); a range outside the documented rules (0-1440, ``to`` >= ``from``, ``Mon``..``Sun``,
  a known time zone, ``slotSize`` > 0) → error 0; an unknown resource → 1009; ``list`` has no
  paging. The demo resources' ranges (``booking.default_slots``) are our choice: the docs do
  not say what a resource has before ``set``. ``booking.add`` checks neither the slots nor
  overlapping bookings (whether Bitrix24 refuses those with 1018 is not documented).
* CRM read permission per user (a model: the docs say only "a user with read access to the
  item"): an admin reads every lead and deal; any other user reads only the items they are
  responsible for (``ASSIGNED_BY_ID``) unless ``portal.grant_crm_read(user_id, "lead" |
  "deal")`` lets them read all of that kind (like a CRM role with "all" instead of "own"
  read access). Refused: ``crm.item.get`` → 400 ``ACCESS_DENIED`` "You do not have
  permission to view this item" (documented); ``crm.lead.get`` / ``crm.deal.get`` → 400
  ``""`` "Access denied" (the docs give only the message). A missing item is "not found"
  first. The check holds inside ``batch`` too (same token); list methods are not filtered.
* Admin-only (403 ``ACCESS_DENIED``): event.bind/unbind, placement.bind/get/unbind,
  bizproc.robot.*, app.option.set, crm.status.add/update/delete,
  crm.lead.userfield.add/update/delete.
"""

from devportal.portal import InstallResult
from devportal.portal import Portal
from devportal.recording import CallRecord
from devportal.recording import DeliveryRecord
from devportal.server import DevPortal

__all__ = ["CallRecord", "DeliveryRecord", "DevPortal", "InstallResult", "Portal"]
