"""The demo's "play the client" pages: a person sees the messenger side of an open-line chat
(what the client gets in Telegram / WhatsApp) and answers, and can book a visit as the
receptionist would in Online Booking.

* ``GET /<slug>/page/client`` — the chats of the portal and a form to book a visit
  (a deal id, minutes from now) with a chat bound to that deal;
* ``POST /<slug>/page/client`` — book: a chat (if none) + ``portal.booking.add_booking`` (fires
  ``ONBOOKINGADD``);
* ``GET /<slug>/page/client/<chat_id>`` — the chat as the client sees it (reloads itself);
* ``POST /<slug>/page/client/<chat_id>`` — the client writes (``ONOPENLINEMESSAGEADD``).

Plain server-rendered HTML, every value escaped.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from werkzeug.utils import redirect
from werkzeug.wrappers import Request
from werkzeug.wrappers import Response

from devportal.pages import _esc

if TYPE_CHECKING:
    from devportal.portal import Portal

STYLE = (
    "body{font:15px system-ui,sans-serif;max-width:640px;margin:2em auto;color:#222}"
    ".msg{margin:.4em 0;padding:.5em .8em;border-radius:12px;max-width:80%;white-space:pre-wrap}"
    ".client{background:#dcf8c6;margin-left:auto}.operator,.bot{background:#eef}"
    ".row{display:flex}form{margin-top:1em}input[type=text]{width:70%}"
)


def _html(title: str, body: str, refresh: bool = False) -> Response:
    meta = '<meta http-equiv="refresh" content="3">' if refresh else ""
    html = (
        f'<!doctype html><html lang="ru"><head><meta charset="utf-8">{meta}'
        f"<title>{_esc(title)}</title><style>{STYLE}</style></head><body>{body}</body></html>"
    )
    return Response(html, content_type="text/html; charset=utf-8")


def client_index(portal: Portal, request: Request) -> Response:
    if request.method == "POST":
        try:
            deal_id = int(request.form.get("deal_id") or 0)
            minutes = float(request.form.get("minutes") or 0)
        except ValueError:
            return Response("deal_id and minutes must be numbers", status=400)
        if deal_id < 1 or not 1 <= minutes <= 60 * 24 * 30:
            return Response("deal_id >= 1, minutes 1..43200", status=400)
        with portal.lock:
            chats = portal.chats.lines.for_item("deal", deal_id, active_only=True)
        chat = chats[0] if chats else portal.chats.open_chat([("deal", deal_id)])
        portal.booking.add_booking(time.time() + minutes * 60, name=request.form.get("name") or "",
                           deal_id=deal_id)  # fmt: skip
        return redirect(f"/{portal.slug}/page/client/{chat.id}", code=303)
    rows = "".join(
        f'<li><a href="/{_esc(portal.slug)}/page/client/{c.id}">чат {c.id}</a> '
        f"({_esc(c.connector_id)}; {_esc(', '.join(f'{t} {i}' for t, i in sorted(c.bindings)))})"
        f"</li>"
        for c in portal.chats.lines.chats.values()
    )
    body = (
        "<h1>Клиент / The client</h1>"
        f"<ul>{rows or '<li>нет чатов / no chats yet</li>'}</ul>"
        "<h2>Записаться / Book a visit</h2>"
        f'<form method="post" action="/{_esc(portal.slug)}/page/client">'
        'Сделка / deal id <input name="deal_id" value="1" size="4"> '
        'через минут / in minutes <input name="minutes" value="30" size="5"> '
        'услуга / service <input name="name" value="Стрижка" size="12"> '
        "<button>Записаться</button></form>"
    )
    return _html("Клиент", body)


def client_chat(portal: Portal, request: Request, chat_id: int) -> Response:
    chat = portal.chats.lines.chats.get(chat_id)
    if chat is None:
        return Response("no such chat", status=404)
    if request.method == "POST":
        text = (request.form.get("text") or "").strip()[:2000]
        if text:
            portal.chats.client_writes(chat_id, text)
        return redirect(f"/{portal.slug}/page/client/{chat_id}", code=303)
    bubbles = "".join(
        f'<div class="row"><div class="msg {_esc(m["kind"])}">{_esc(m["text"])}</div></div>'
        for m in portal.chats.chat_messages(chat_id)
    )
    body = (
        f'<p><a href="/{_esc(portal.slug)}/page/client">← чаты</a></p>'
        f"<h1>{_esc(chat.connector_id)} · чат {chat_id}</h1>{bubbles or '<p>…</p>'}"
        f'<form method="post"><input type="text" name="text" autofocus placeholder="1 — подтверждаю">'
        " <button>Отправить</button></form>"
    )
    return _html(f"Чат {chat_id}", body, refresh=True)
