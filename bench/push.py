"""Load benchmark of the ingest API: records per second acknowledged by one server process.

Usage (from the project root)::

    uv run python bench/push.py                 # every case
    uv run python bench/push.py --records 200000

``ingest-assets serve`` runs in a process of its own (one uvicorn worker) on a free loopback
port; clients are threads of this process with one HTTP session each, and wrk (Debian's
package, when installed) for one record a request, which Python clients cannot send fast
enough. A record is counted when its request is answered 202 (journaled durably). For each
case the table gives the server's CPU seconds (user + system, from /proc) beside the wall
time, and its peak memory. The last case
fills the journal past ``max_pending_rows`` and counts the 429 answers: the server must keep
answering, with its memory bounded.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import requests

TOKEN = "bench-token"
DEFS = """
type: ingest_assets.components.IngestDatasets
attributes:
  datasets:
    - name: events
      source: {location: landing/events, key_template: "dt={date}/*.ndjson"}
      partitioning: {cadence: daily, start: "2026-11-01"}
      schema:
        columns:
          event_id: {dtype: string, nullable: false, unique: true}
          user_id: {dtype: int64, nullable: false, checks: {ge: 0}}
          kind: {dtype: string, checks: {isin: [view, click, buy]}}
          amount: {dtype: float64}
          email: {dtype: string, severity: warn, checks: {email: true}}
          happened_at: {dtype: timestamp, nullable: false}
      destination: {table: raw.events}
      ingest_api: %(api)s
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _record(number: int, rng: random.Random) -> dict[str, Any]:
    moment = datetime(2026, 11, 2, tzinfo=UTC) + timedelta(seconds=rng.randrange(3 * 86_400))
    return {
        "event_id": f"e{number}",
        "user_id": rng.randrange(100_000),
        "kind": rng.choice(["view", "click", "buy"]),
        "amount": round(rng.random() * 100, 2),
        "email": f"user{number}@example.com",
        "happened_at": moment.isoformat(),
    }


class Server:
    """``ingest-assets serve`` in its own process, measured through /proc."""

    def __init__(self, folder: Path, **api: Any) -> None:
        settings = {"time_field": "happened_at", "idempotency_field": "event_id", **api}
        defs = folder / "defs"
        (defs / "events").mkdir(parents=True)
        (defs / "events" / "defs.yaml").write_text(DEFS % {"api": orjson.dumps(settings).decode()})
        self.url = f"http://127.0.0.1:{_free_port()}"
        command = "from ingest_assets.cli import main; raise SystemExit(main())"
        self.process = subprocess.Popen(
            [sys.executable, "-c", command, "serve", "--defs", str(defs),
             "--port", self.url.rsplit(":", 1)[1], "--journal", str(folder / "journal.sqlite")],
            env={**os.environ, "INGEST_ASSETS_DATA_DIR": str(folder), "INGEST_TOKEN_EVENTS": TOKEN},
            stdout=subprocess.DEVNULL,
            stderr=(folder / "server.log").open("ab"),
        )  # fmt: skip
        while True:
            try:
                if requests.get(f"{self.url}/health", timeout=1).ok:
                    break
            except requests.ConnectionError:
                time.sleep(0.1)
            if self.process.poll() is not None:
                raise RuntimeError((folder / "server.log").read_text())

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def peak_mb(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def alive(self) -> bool:
        return requests.get(f"{self.url}/health", timeout=5).ok

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=120)


def run_case(
    server: Server, bodies: list[bytes], clients: int, content_type: str
) -> dict[str, float]:
    """Post every body with ``clients`` threads; count records per answer status."""
    sessions: dict[int, requests.Session] = {}
    counts: dict[int, int] = {}
    rows = [body.count(b'"event_id"') for body in bodies]

    def post(index: int) -> tuple[int, int]:
        import threading

        session = sessions.setdefault(threading.get_ident(), requests.Session())
        answer = session.post(
            f"{server.url}/ingest/events",
            data=bodies[index],
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": content_type},
            timeout=60,
        )
        return answer.status_code, rows[index]

    cpu, started = server.cpu_seconds(), time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        for status, count in pool.map(post, range(len(bodies))):
            counts[status] = counts.get(status, 0) + count
    seconds = time.perf_counter() - started
    accepted = counts.get(202, 0) + counts.get(207, 0)
    return {
        "records": sum(rows),
        "accepted": accepted,
        "refused_429": counts.get(429, 0),
        "seconds": seconds,
        "server_cpu": server.cpu_seconds() - cpu,
        "records_per_s": accepted / seconds,
    }


_WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %s"
counter = 0
request = function()
  counter = counter + 1
  local body = string.format('{"event_id":"w%%d-%%d","user_id":%%d,"kind":"view",'
    .. '"amount":1.5,"email":"a@b.co","happened_at":"2026-11-02T10:00:00+00:00"}',
    math.random(1, 1000000000), counter, counter)
  return wrk.format(nil, "/ingest/events", nil, body)
end
"""


def run_wrk(server: Server, folder: Path, seconds: int = 10) -> dict[str, float] | None:
    """One record a request from wrk (a C load generator, Debian's package), if installed.

    Python clients cannot send small requests as fast as the server answers them; wrk can.
    """
    wrk = shutil.which("wrk")
    if wrk is None:
        return None
    script = folder / "post.lua"
    script.write_text(_WRK_SCRIPT % TOKEN)
    cpu = server.cpu_seconds()
    out = subprocess.run(
        [wrk, "-t1", "-c16", f"-d{seconds}s", "-s", str(script), server.url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    requests_done = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    failed = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    refused = int(failed.group(1)) if failed else 0
    return {
        "records": requests_done,
        "accepted": requests_done - refused,
        "refused_429": refused,
        "seconds": seconds,
        "server_cpu": server.cpu_seconds() - cpu,
        "records_per_s": (requests_done - refused) / seconds,
    }


def _bodies(count: int, per_request: int, ndjson: bool, start: int = 0) -> list[bytes]:
    rng = random.Random(start)
    records = [_record(start + n, rng) for n in range(count)]
    chunks = [records[i : i + per_request] for i in range(0, count, per_request)]
    if ndjson:
        return [b"\n".join(orjson.dumps(r) for r in chunk) + b"\n" for chunk in chunks]
    return [orjson.dumps(chunk if per_request > 1 else chunk[0]) for chunk in chunks]


def main() -> None:
    """Run every case; print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=100_000)
    args = parser.parse_args()
    cases = [
        ("JSON arrays of 100", args.records, 100, False, 4),
        ("NDJSON of 1,000", args.records, 1_000, True, 4),
        ("one a request (Python)", max(5_000, args.records // 20), 1, False, 8),
    ]
    header = (
        f"{'case':<24}{'records':>9}{'accepted':>10}{'429':>7}{'seconds':>9}"
        f"{'server CPU s':>13}{'records/s':>11}{'peak MB':>9}"
    )
    print(header)
    print("-" * len(header))
    for name, count, per_request, ndjson, clients in cases:
        with tempfile.TemporaryDirectory(prefix="ingest-push-") as tmp:
            server = Server(Path(tmp))
            try:
                kind = "application/x-ndjson" if ndjson else "application/json"
                result = run_case(server, _bodies(count, per_request, ndjson), clients, kind)
                _print(name, result, server.peak_mb())
            finally:
                server.stop()
    with tempfile.TemporaryDirectory(prefix="ingest-push-") as tmp:
        server = Server(Path(tmp))
        try:
            result = run_wrk(server, Path(tmp))
            if result is not None:
                _print("one a request (wrk)", result, server.peak_mb())
        finally:
            server.stop()
    with tempfile.TemporaryDirectory(prefix="ingest-push-") as tmp:
        # Overload: the journal holds at most 20,000 unwritten records, which are written only
        # once an hour: everything past them is refused with 429 while the server keeps going.
        server = Server(Path(tmp), max_pending_rows=20_000, flush_seconds=3600)
        try:
            result = run_case(server, _bodies(100_000, 1_000, True), 8, "application/x-ndjson")
            assert server.alive(), "the server stopped answering"
            _print("overload (20k buffer)", result, server.peak_mb())
        finally:
            server.stop()


def _print(name: str, result: dict[str, float], peak: float) -> None:
    print(
        f"{name:<24}{result['records']:>9,.0f}{result['accepted']:>10,.0f}"
        f"{result['refused_429']:>7,.0f}{result['seconds']:>9.2f}{result['server_cpu']:>13.2f}"
        f"{result['records_per_s']:>11,.0f}{peak:>9.0f}"
    )


if __name__ == "__main__":
    main()
