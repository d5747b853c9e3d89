"""The client's side of an open-line chat, in a browser: the demo's "write to the salon" window.

``GET /<slug>/page/chat`` shows a messenger-like window. "Start" plays a client writing in from
Telegram: the portal creates the open-line lead (``SOURCE_ID=1|TELEGRAMBOT``) and the chat
bound to it, the line's bot joins (``ONIMBOTV2JOINCHAT``). Each message the person types (or
button they tap) is the client writing (``ONIMBOTV2MESSAGEADD`` while the bot holds the
session). The window polls the chat and shows the bot's answers with their keyboards, the
typing indicator, the hand-off and the operator's replies; the operator can answer from the
small box on the right (what the operator's Bitrix24 chat would do).

JSON endpoints under ``/<slug>/_chat/``: ``open`` (POST), ``<id>`` (GET: messages, buttons,
who holds the session), ``<id>/say`` and ``<id>/operator`` (POST ``text``).
"""

from __future__ import annotations

import json
import time
from typing import Any
from typing import TYPE_CHECKING

from werkzeug.wrappers import Request
from werkzeug.wrappers import Response

if TYPE_CHECKING:
    from devportal.portal import Portal


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body, ensure_ascii=False), status=status,
                    content_type="application/json; charset=utf-8")  # fmt: skip


def open_chat(portal: Portal, request: Request) -> Response:
    name = (request.form.get("name") or "Клиент").strip()[:60]
    lead_id = portal.crm.add_lead({"TITLE": f"Telegram: {name}", "SOURCE_ID": "1|TELEGRAMBOT",
                               "ASSIGNED_BY_ID": 2})  # fmt: skip
    chat = portal.chats.open_chat([("lead", lead_id)], connector_id="telegrambot")
    return _json({"chat_id": chat.id, "lead_id": lead_id})


def chat_state(portal: Portal, chat_id: int) -> Response:
    with portal.lock:
        chat = portal.chats.lines.chats.get(chat_id)
        if chat is None:
            return _json({"error": "not found"}, 404)
        imbot = portal.imbot
        session = imbot.session(chat)
        messages = []
        for m in chat.messages:
            kind = m.kind
            if kind == "bot" and m.id in imbot.system:
                kind = "note"  # the summary for the operator
            keyboard = imbot.keyboards.get(m.id) or {}
            messages.append({
                "id": m.id, "kind": kind, "text": m.text,
                "buttons": [b["TEXT"] for b in keyboard.get("BUTTONS", []) if "TEXT" in b],
            })  # fmt: skip
        typing = imbot.typing.get(chat_id) or []
        last_bot = max((m.created for m in chat.messages if m.kind == "bot"), default=0.0)
        operator = portal.people.users.get(session.operator_id or 0, {}).get("NAME")
        return _json({
            "chat_id": chat_id,
            "lead_id": next((i for t, i in chat.bindings if t == "lead"), None),
            "holder": session.holder,
            "operator": operator,
            "typing": bool(typing) and typing[-1] > last_bot and time.time() - typing[-1] < 10,
            "messages": messages,
        })  # fmt: skip


def say(portal: Portal, chat_id: int, request: Request, operator: bool) -> Response:
    text = (request.form.get("text") or "").strip()[:2000]
    if not text or chat_id not in portal.chats.lines.chats:
        return _json({"error": "empty message or unknown chat"}, 400)
    if operator:
        session = portal.imbot.sessions.get(chat_id)
        user = (session.operator_id if session else None) or portal.imbot.operators[0]
        message_id = portal.chats.operator_writes(chat_id, user, text)
    else:
        message_id = portal.chats.client_writes(chat_id, text)
    return _json({"id": message_id})


def handle(portal: Portal, request: Request, path: str) -> Response:
    parts = [p for p in path.split("/") if p]
    if parts == ["open"] and request.method == "POST":
        return open_chat(portal, request)
    if parts and parts[0].isdigit():
        chat_id = int(parts[0])
        if len(parts) == 1:
            return chat_state(portal, chat_id)
        if len(parts) == 2 and request.method == "POST" and parts[1] in ("say", "operator"):
            return say(portal, chat_id, request, parts[1] == "operator")
    return _json({"error": "not found"}, 404)


def page(portal: Portal) -> Response:
    return Response(PAGE.replace("__SLUG__", portal.slug),
                    content_type="text/html; charset=utf-8")  # fmt: skip


PAGE = """<!doctype html>
<html lang="ru"><head><meta charset="utf-8"><title>Чат с салоном — Bitrix24 (devportal)</title>
<style>
body{margin:0;font:14px/1.4 "Helvetica Neue",Arial,sans-serif;background:#eef2f4;color:#333}
header{background:#2fc6f6;color:#fff;padding:10px 18px;font-weight:bold}
.wrap{display:flex;gap:16px;margin:16px}
.phone{width:380px;background:#fff;border-radius:12px;box-shadow:0 1px 4px #0002;display:flex;
 flex-direction:column;height:640px}
.phone h2{margin:0;padding:10px 14px;font-size:15px;background:#229ed9;color:#fff;
 border-radius:12px 12px 0 0}
#messages{flex:1;overflow-y:auto;padding:10px;display:flex;flex-direction:column;gap:6px}
.msg{max-width:80%;padding:6px 10px;border-radius:10px;white-space:pre-wrap}
.client{align-self:flex-end;background:#dcf8c6}
.bot{align-self:flex-start;background:#f1f1f1}
.operator{align-self:flex-start;background:#e3f2fd}
.system,.note{align-self:center;background:none;color:#888;font-size:12px;text-align:center}
.note{border:1px dashed #bbb;border-radius:6px;padding:4px 8px}
.buttons{display:flex;flex-direction:column;gap:4px;margin-top:4px}
.buttons button{border:1px solid #229ed9;background:#fff;color:#229ed9;border-radius:6px;
 padding:4px;cursor:pointer}
#typing{height:18px;padding:0 12px;color:#888;font-size:12px}
form{display:flex;border-top:1px solid #eee}
form input{flex:1;border:0;padding:12px;font-size:14px}
form button{border:0;background:#229ed9;color:#fff;padding:0 16px}
.side{flex:1;background:#fff;border-radius:6px;padding:12px}
#status{font-weight:bold;margin-bottom:8px}
</style></head>
<body>
<header>Bitrix24 · devportal · __SLUG__ — чат клиента (Telegram → Открытая линия)</header>
<div class="wrap">
 <div class="phone">
  <h2>Салон · Telegram</h2>
  <div id="messages"><button id="start">Написать в салон</button></div>
  <div id="typing"></div>
  <form id="compose"><input id="text" placeholder="Сообщение" autocomplete="off" disabled>
   <button id="send" disabled>➤</button></form>
 </div>
 <div class="side">
  <div id="status">Диалог не начат</div>
  <div id="lead"></div>
  <p>Оператор (после передачи диалога):</p>
  <form id="operator-form"><input id="operator-text" placeholder="Ответ оператора"
   autocomplete="off"><button>Ответить</button></form>
 </div>
</div>
<script>
const base = "/__SLUG__/_chat/";
let chatId = null, shown = -1;
function post(url, data) {
  return fetch(url, {method: "POST", body: new URLSearchParams(data)}).then(r => r.json());
}
function send(text) {
  if (!chatId || !text) return;
  post(base + chatId + "/say", {text});
}
function render(state) {
  const box = document.getElementById("messages");
  if (state.messages.length !== shown) {
    shown = state.messages.length;
    box.innerHTML = "";
    state.messages.forEach((m, i) => {
      const div = document.createElement("div");
      div.className = "msg " + m.kind;
      div.dataset.kind = m.kind;
      div.textContent = m.text;
      const last = i === state.messages.length - 1;
      if (m.buttons.length && last && state.holder === "bot") {
        const row = document.createElement("div");
        row.className = "buttons";
        m.buttons.forEach(b => {
          const btn = document.createElement("button");
          btn.textContent = b;
          btn.onclick = () => send(b);
          row.appendChild(btn);
        });
        div.appendChild(row);
      }
      box.appendChild(div);
    });
    box.scrollTop = box.scrollHeight;
  }
  document.getElementById("typing").textContent = state.typing ? "Ассистент печатает…" : "";
  const status = document.getElementById("status");
  status.dataset.holder = state.holder;
  status.textContent = state.holder === "bot" ? "Отвечает ИИ-ассистент"
    : state.holder === "operator" ? "Диалог передан оператору" + (state.operator ? ": " +
      state.operator : "") : "Диалог закрыт";
  document.getElementById("lead").textContent = "Лид #" + state.lead_id;
}
function poll() {
  if (chatId) fetch(base + chatId).then(r => r.json()).then(render).catch(() => {});
}
document.getElementById("start").onclick = () => {
  post(base + "open", {name: "Клиент"}).then(r => {
    chatId = r.chat_id;
    document.getElementById("text").disabled = false;
    document.getElementById("send").disabled = false;
    document.getElementById("messages").dataset.chat = chatId;
    poll();
  });
};
document.getElementById("compose").onsubmit = e => {
  e.preventDefault();
  const input = document.getElementById("text");
  send(input.value.trim());
  input.value = "";
};
document.getElementById("operator-form").onsubmit = e => {
  e.preventDefault();
  const input = document.getElementById("operator-text");
  if (chatId && input.value.trim()) post(base + chatId + "/operator", {text: input.value.trim()});
  input.value = "";
};
setInterval(poll, 300);
</script>
</body></html>
"""
