"""Event intake benchmark: how many lead events ``POST /handlers/events`` acknowledges per second.

Starts a private redis-server (free port), migrates an SQLite file, seeds one installed
portal row (:func:`b24app.storage.portals.upsert_install`) and serves ``b24app.wsgi:app`` with
gunicorn (2 workers) configured through ``B24APP_*`` variables. Then ``--events`` distinct
form-encoded ``ONCRMLEADADD`` deliveries (the wire format of
``tests/fixtures/oncrmleadadd_event.form.json``) are posted from a thread pool; it prints the
acknowledged events/s, the p50/p99/max latency and checks every delivery left one job on the
``events`` queue (nothing is processed: no worker runs, the figure is the intake alone).

    python bench/event_ingest.py [--events 2000] [--threads 16] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from b24app import context  # noqa: E402
from b24app.config import Settings  # noqa: E402
from b24app.storage.migrate import upgrade  # noqa: E402
from b24app.storage.portals import InstallAuth  # noqa: E402
from b24app.storage.portals import upsert_install  # noqa: E402
from tests.conftest import free_port  # noqa: E402
from tests.conftest import RedisServer  # noqa: E402

MEMBER_ID = "bench" + "0" * 27
APP_TOKEN = "bench-application-token-0123456789"
FIXTURE = ROOT / "tests" / "fixtures" / "oncrmleadadd_event.form.json"


def wait_until_up(url: str, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """Poll ``url`` until gunicorn answers (or fail if it died)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {proc.returncode}")
        try:
            requests.get(url, timeout=1)
            return
        except requests.RequestException:
            time.sleep(0.2)
    raise RuntimeError("gunicorn did not start")


def percentile(sorted_values: list[float], share: float) -> float:
    """The value below which ``share`` of the sorted values fall (nearest rank)."""
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * share))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    args = parser.parse_args()

    redis_server = RedisServer()
    redis_server.start()
    workdir = Path(tempfile.mkdtemp(prefix="b24app-bench-ingest-"))
    database_url = "sqlite:///" + str(workdir / "bench.sqlite")
    upgrade(database_url)
    port = free_port()
    settings = Settings(
        client_id="local.bench.app",
        client_secret="bench-client-secret-0123456789abcdef0123",
        public_url=f"http://127.0.0.1:{port}",
        database_url=database_url,
        redis_url=redis_server.url,
        secret_key="bench-secret-key-0123456789abcdef01234567",
        allow_insecure_endpoints=True,
        log_level="WARNING",
    )
    services = context.build_services(settings)
    with services.db() as session:
        upsert_install(
            session,
            InstallAuth(
                member_id=MEMBER_ID,
                domain="bench.bitrix24.ru",
                client_endpoint="https://bench.bitrix24.ru/rest/",
                access_token="bench-access",
                refresh_token="bench-refresh",
                application_token=APP_TOKEN,
            ),
        )
    env = {
        **os.environ,
        "B24APP_CLIENT_ID": settings.client_id,
        "B24APP_CLIENT_SECRET": settings.client_secret,
        "B24APP_PUBLIC_URL": settings.public_url,
        "B24APP_DATABASE_URL": database_url,
        "B24APP_REDIS_URL": settings.redis_url,
        "B24APP_SECRET_KEY": settings.secret_key,
        "B24APP_ALLOW_INSECURE_ENDPOINTS": "true",
        "B24APP_LOG_LEVEL": "WARNING",
    }
    gunicorn = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("gunicorn")),
            "--workers",
            str(args.workers),
            "--bind",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
            "b24app.wsgi:app",
        ],
        cwd=workdir,
        env=env,
    )
    base = settings.public_url
    template: dict[str, str] = json.loads(FIXTURE.read_text())
    template["auth[member_id]"] = MEMBER_ID
    template["auth[application_token]"] = APP_TOKEN
    ts0 = int(time.time())
    try:
        wait_until_up(f"{base}/health", gunicorn)
        session_per_thread: dict[int, requests.Session] = {}

        def post(n: int) -> tuple[int, float]:
            import threading

            http = session_per_thread.setdefault(threading.get_ident(), requests.Session())
            form = {**template, "data[FIELDS][ID]": str(100_000 + n), "ts": str(ts0 + n)}
            started = time.perf_counter()
            response = http.post(f"{base}/handlers/events", data=form, timeout=30)
            return response.status_code, time.perf_counter() - started

        for n in range(min(20, args.events)):  # warm up both workers (imports, pools)
            post(-1 - n)
        services.queue("events").empty()
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=args.threads) as pool:
            results = list(pool.map(post, range(args.events)))
        elapsed = time.perf_counter() - started
        latencies = sorted(t for _, t in results)
        ok = sum(1 for status, _ in results if status == 200)
        statuses: dict[int, int] = {}
        for status, _ in results:
            statuses[status] = statuses.get(status, 0) + 1
        queued = services.queue("events").count
        print()
        print(f"{'metric':<36}{'value':>14}")
        print(f"{'events posted':<36}{args.events:>14}")
        print(f"{'answered 200':<36}{ok:>14}")
        print(f"{'jobs on the events queue':<36}{queued:>14}")
        print(f"{'gunicorn workers / client threads':<36}{f'{args.workers} / {args.threads}':>14}")
        print(f"{'acknowledged events/s':<36}{ok / elapsed:>14.0f}")
        print(f"{'latency p50 (ms)':<36}{statistics.median(latencies) * 1000:>14.1f}")
        print(f"{'latency p99 (ms)':<36}{percentile(latencies, 0.99) * 1000:>14.1f}")
        print(f"{'latency max (ms)':<36}{latencies[-1] * 1000:>14.1f}")
        if statuses.keys() - {200}:
            print(f"non-200 answers: {statuses}")
    finally:
        gunicorn.terminate()
        try:
            gunicorn.wait(10)
        except subprocess.TimeoutExpired:
            gunicorn.kill()
        services.dispose()
        redis_server.stop()


if __name__ == "__main__":
    main()
