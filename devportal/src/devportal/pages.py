"""Browser pages that frame the app the way Bitrix24 does, and the parent side of the
b24jssdk frame protocol.

How Bitrix24 opens an app: the portal page holds an ``<iframe name="DOMAIN|PROTOCOL|
APP_SID">`` and auto-submits a hidden ``<form target=…>`` to the handler URL, with
``DOMAIN, PROTOCOL, LANG, APP_SID`` in the action's query string and the tokens in the body.
The b24jssdk reads ``window.name`` to find the portal origin and app sid, then talks to the
parent with ``postMessage`` strings ``"<command>[:<json params>]:<callback id>:<app sid>"``;
the parent answers ``"<callback id>:<json>"`` to the frame's origin. This file implements
that parent (our own code, written from reading the SDK's message format) and reports every
command to ``/<slug>/_frame/<command>`` so tests can assert on it (``portal.widgets.frame_messages``).
``setInstallFinish`` marks the app install-finished, as the real portal does.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any
from typing import TYPE_CHECKING
from urllib.parse import urlencode
from urllib.parse import urlsplit

from werkzeug.wrappers import Request
from werkzeug.wrappers import Response

if TYPE_CHECKING:
    from devportal.portal import Portal
    from devportal.server import DevPortal

RESERVED = {"user", "lang", "handler", "installer", "events", "path", "event"}


def _user(portal: Portal, request: Request) -> int:
    try:
        return int(request.args.get("user") or portal.admin_user_id)
    except ValueError:
        return portal.admin_user_id


def _page(
    portal: Portal,
    request: Request,
    *,
    title: str,
    handler: str,
    placement: str,
    options: dict[str, Any] | None,
) -> Response:
    user_id = _user(portal, request)
    lang = request.args.get("lang") or portal.lang
    query, form = portal.widgets.frame_payload(user_id, placement, options, lang)
    app_sid = query["APP_SID"]
    action = handler + ("&" if "?" in handler else "?") + urlencode(query)
    frame_name = f"{query['DOMAIN']}|{query['PROTOCOL']}|{app_sid}"
    config = {
        "slug": portal.slug,
        "appSid": app_sid,
        "appOrigin": "{0.scheme}://{0.netloc}".format(urlsplit(handler)),
        "userId": user_id,
        "init": {
            "DOMAIN": query["DOMAIN"],
            "PROTOCOL": 0,
            "PATH": request.path,
            "LANG": lang,
            "AUTH_ID": form["AUTH_ID"],
            "AUTH_EXPIRES": int(form["AUTH_EXPIRES"]),
            "REFRESH_ID": form["REFRESH_ID"],
            "MEMBER_ID": portal.member_id,
            "IS_ADMIN": portal.people.is_admin(user_id),
            "PLACEMENT": placement,
            "PLACEMENT_OPTIONS": options or {},
            "INSTALL": not portal.app.install_finished,
            "FIRST_RUN": False,
            "APP_OPTIONS": dict(portal.app.options),
            "USER_OPTIONS": dict(portal.app.user_options.get(user_id, {})),
        },
    }
    inputs = "\n".join(
        f'<input type="hidden" name="{_esc(k)}" value="{_esc(v)}">' for k, v in form.items()
    )
    html = PAGE.format(
        title=_esc(title),
        slug=_esc(portal.slug),
        action=_esc(action),
        frame_name=_esc(frame_name),
        inputs=inputs,
        config=json.dumps(config, ensure_ascii=False).replace("</", "<\\/"),
        script=PARENT_JS,
    )
    return Response(html, content_type="text/html; charset=utf-8")


def _esc(value: Any) -> str:
    return (
        str(value)
        .replace("&", "&amp;")
        .replace('"', "&quot;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
    )


def install_page(emu: DevPortal, portal: Portal, request: Request) -> Response:
    """The admin opens a freshly added app: ONAPPINSTALL is queued, the installer framed."""
    installer = request.args.get("installer", "/install/")
    if not portal.app.installed or request.args.get("reinstall") == "1":
        portal.app.prepare_install(request.args.get("events", "/install/events"))
        if request.args.get("event", "1") == "1":
            portal.app.send_install_event(user_id=_user(portal, request))
    return _page(
        portal, request, title="Установка приложения", handler=emu.app_url(installer),
        placement="DEFAULT", options=None,
    )  # fmt: skip


def app_page(emu: DevPortal, portal: Portal, request: Request) -> Response:
    path = request.args.get("path", "/app/")
    return _page(
        portal, request, title="Приложение", handler=emu.app_url(path), placement="DEFAULT",
        options=None,
    )  # fmt: skip


def placement_page(emu: DevPortal, portal: Portal, request: Request, code: str) -> Response:
    if not portal.app.install_finished:
        return Response(
            "The application is not fully installed yet.", status=409, content_type="text/plain"
        )
    try:
        binding = portal.widgets.placement_binding(code, request.args.get("handler"))
    except KeyError:
        return Response(f"No widget bound to {code}", status=404, content_type="text/plain")
    options = {k: v for k, v in request.args.items() if k not in RESERVED}
    return _page(
        portal, request, title=binding.get("title") or code, handler=binding["handler"],
        placement=code, options=options,
    )  # fmt: skip


def frame_message(emu: DevPortal, portal: Portal, request: Request, command: str) -> Response:
    """The parent page reports a frame command; some commands change portal state."""
    try:
        body = json.loads(request.get_data(as_text=True) or "{}")
    except ValueError:
        body = {}
    params = body.get("params") if isinstance(body, dict) else None
    # Recorded first: whoever sees the command's effect (install finished) sees the command.
    with portal.lock:
        portal.widgets.frame_messages.append(
            {
                "command": command,
                "params": params,
                "app_sid": body.get("appSid"),
                "time": time.time(),
            }
        )
    answer: dict[str, Any] = {}
    if command == "setInstallFinish":
        portal.app.finish_install()
    elif command == "refreshAuth":
        pair = portal.tokens_for(int(body.get("userId") or portal.admin_user_id))
        answer = {
            "AUTH_ID": pair.access_token,
            "REFRESH_ID": pair.refresh_token,
            "AUTH_EXPIRES": emu.tokens.access_ttl,
        }
    elif command == "setAppOption" and isinstance(params, dict):
        with portal.lock:
            portal.app.options[str(params.get("name"))] = params.get("value")
    return Response(json.dumps(answer), content_type="application/json")


def new_sid() -> str:
    return secrets.token_hex(16)


PAGE = """<!doctype html>
<html lang="ru"><head><meta charset="utf-8"><title>{title} — Bitrix24 (devportal)</title>
<style>
body{{margin:0;font:14px/1.4 "Helvetica Neue",Arial,sans-serif;background:#eef2f4;color:#333}}
header{{background:#2fc6f6;color:#fff;padding:10px 18px;font-weight:bold}}
header small{{font-weight:normal;opacity:.8;margin-left:8px}}
main{{margin:16px;background:#fff;border-radius:6px;padding:12px}}
h1{{font-size:20px;margin:4px 0 12px}}
iframe{{width:100%;height:600px;border:0;display:block}}
#b24-status{{color:#888;font-size:12px;margin-top:6px}}
</style></head>
<body>
<header>Bitrix24<small>devportal · {slug}</small></header>
<main>
<h1 id="b24-title">{title}</h1>
<iframe id="app-frame" name="{frame_name}" allow="clipboard-write"></iframe>
<div id="b24-status"></div>
</main>
<form id="app-form" method="POST" action="{action}" target="{frame_name}" style="display:none">
{inputs}
</form>
<script>window.DEVPORTAL = {config};</script>
<script>{script}</script>
</body></html>
"""

# The parent side of the frame protocol. Written for the emulator; see module docstring.
PARENT_JS = r"""
(function () {
  var cfg = window.DEVPORTAL;
  var frame = document.getElementById('app-frame');
  var statusEl = document.getElementById('b24-status');
  function report(command, params) {
    return fetch('/' + cfg.slug + '/_frame/' + encodeURIComponent(command), {
      method: 'POST', headers: {'Content-Type': 'application/json'},
      body: JSON.stringify({params: params, appSid: cfg.appSid, userId: cfg.userId})
    }).then(function (r) { return r.json(); });
  }
  function reply(callback, value) {
    if (!callback) { return; }
    var payload = value === undefined ? '{}' : JSON.stringify(value);
    frame.contentWindow.postMessage(callback + ':' + payload, cfg.appOrigin);
  }
  function parse(raw) {
    if (!raw) { return null; }
    try { return JSON.parse(raw); } catch (e) { return raw; }
  }
  var handlers = {
    getInitData: function (p, done) { done(cfg.init); },
    setInstallFinish: function (p, done) {
      report('setInstallFinish', p).then(function () {
        cfg.init.INSTALL = false;
        statusEl.textContent = 'installFinish: приложение установлено';
        done({});
      });
      return true;
    },
    refreshAuth: function (p, done) {
      report('refreshAuth', p).then(function (auth) {
        cfg.init.AUTH_ID = auth.AUTH_ID; cfg.init.REFRESH_ID = auth.REFRESH_ID;
        done(auth);
      });
      return true;
    },
    resizeWindow: function (p, done) {
      if (p && p.height) { frame.style.height = parseInt(p.height, 10) + 'px'; }
      if (p && p.width) { frame.style.width = String(p.width).indexOf('%') > 0 ? p.width : parseInt(p.width, 10) + 'px'; }
      done({});
    },
    setTitle: function (p, done) {
      if (p && p.title) { document.getElementById('b24-title').textContent = p.title; }
      done({});
    },
    reloadWindow: function (p, done) { done({}); setTimeout(function () { location.reload(); }, 50); },
    getInterface: function (p, done) { done({command: [], event: []}); },
    setAppOption: function (p, done) { if (p) { cfg.init.APP_OPTIONS[p.name] = p.value; } done({}); },
    setUserOption: function (p, done) { if (p) { cfg.init.USER_OPTIONS[p.name] = p.value; } done({}); }
  };
  window.addEventListener('message', function (event) {
    if (event.source !== frame.contentWindow || typeof event.data !== 'string') { return; }
    // "<command>[:<params>]:<callback>:<appSid>" — params may themselves contain ':'
    var parts = event.data.split(':');
    if (parts.length < 3) { return; }
    var command = parts[0];
    var appSid = parts[parts.length - 1];
    var callback = parts[parts.length - 2];
    if (appSid !== cfg.appSid) { return; }
    var params = parse(parts.slice(1, parts.length - 2).join(':'));
    var handler = handlers[command];
    var done = function (value) { reply(callback, value); };
    var reported = false;
    if (handler) { reported = handler(params, done) === true; } else { done({}); }
    if (!reported) { report(command, params); }
  });
  document.getElementById('app-form').submit();
})();
"""
