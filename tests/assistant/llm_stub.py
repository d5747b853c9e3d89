"""A tiny local OpenAI-compatible ``/chat/completions`` server for the assistant's model tests
and benchmarks; ``delay`` makes it slow, ``answer`` is the JSON it returns as the content."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer
from typing import Any


class LlmStub:
    def __init__(self, answer: dict[str, Any] | None = None, delay: float = 0.0) -> None:
        self.answer = answer or {"intents": [], "confidence": 0.0}
        self.delay = delay
        self.requests: list[dict[str, Any]] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                stub.requests.append(json.loads(body or b"{}"))
                time.sleep(stub.delay)
                content = json.dumps(stub.answer, ensure_ascii=False)
                data = json.dumps({"choices": [{"message": {"content": content}}]}).encode()
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the client gave up (timeout)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> LlmStub:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
