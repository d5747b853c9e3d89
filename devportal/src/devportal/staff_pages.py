"""The demo's "play the master" page: what an employee sees from the app's bot in their
personal dialog (the question after a visit, «пришла? Да / Нет / Перенесли») and the buttons
under it.

* ``GET /<slug>/page/staff/<user_id>`` — the bots' messages to that employee, newest last,
  each with its keyboard as buttons (reloads itself);
* ``POST /<slug>/page/staff/<user_id>`` — the employee taps ``text`` under ``message_id``
  (:func:`devportal.bot_taps.tap`: ``ONIMBOTV2COMMANDADD`` to the bot).

Plain server-rendered HTML, every value escaped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from werkzeug.utils import redirect
from werkzeug.wrappers import Request
from werkzeug.wrappers import Response

from devportal.bot_taps import tap
from devportal.client_pages import _html
from devportal.pages import _esc

if TYPE_CHECKING:
    from devportal.portal import Portal


def staff_dialog(portal: Portal, request: Request, user_id: int) -> Response:
    if user_id not in portal.people.users:
        return Response("no such user", status=404)
    if request.method == "POST":
        try:
            message_id = int(request.form.get("message_id") or 0)
        except ValueError:
            return Response("message_id must be a number", status=400)
        tap(portal, user_id, message_id, str(request.form.get("text") or "")[:100])
        return redirect(f"/{portal.slug}/page/staff/{user_id}", code=303)
    with portal.lock:
        messages = [dict(m) for m in portal.imbot.personal.to_user(user_id)]
        name = str(portal.people.users[user_id].get("NAME") or user_id)
    body = "".join(_message(m) for m in messages) or "<p>…</p>"
    return _html(f"{name}: бот", f"<h1>{_esc(name)} · бот / the bot</h1>{body}", refresh=True)


def _message(message: dict[str, object]) -> str:
    keyboard = message.get("keyboard")
    buttons = "".join(
        f'<button name="text" value="{_esc(str(b.get("TEXT")))}">{_esc(str(b.get("TEXT")))}</button> '
        for b in (keyboard if isinstance(keyboard, list) else [])
        if isinstance(b, dict) and b.get("TEXT")
    )
    pressed = message.get("pressed") or set()
    form = (
        f'<form method="post"><input type="hidden" name="message_id" value="{message["id"]}">'
        f"{buttons}</form>"
        if buttons and not pressed
        else ""
    )
    return f'<div class="row"><div class="msg bot">{_esc(str(message["text"]))}{form}</div></div>'
