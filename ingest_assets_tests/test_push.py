"""The ingest API as clients meet it: a real server process (``ingest-assets serve``) on a free
loopback port, records pushed over HTTP, the files it lands loaded by the landing sensor.

Acknowledged records are never lost, even when the server is killed with SIGKILL mid-stream; a
request retried with its Idempotency-Key (or records sent again with the same key field) lands
once; invalid records are answered by index, field and rule and kept as dead letters; bad
requests are refused whole with a clear 4xx and nothing written.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import orjson
import requests
from dagster_duckdb import DuckDBResource

from ingest_assets.components.assets import dataset_asset
from ingest_assets.declarations import load_declared
from ingest_assets.spec import DatasetSpec, LandingTrigger
from ingest_assets.triggers.landing import landing_sensor
from ingest_assets_tests.conftest import free_port, query

TOKEN = "push-token-5b2c0e7d"
DAYS = ["2026-11-02", "2026-11-03", "2026-11-04"]

DEFS = """
type: ingest_assets.components.IngestDatasets
attributes:
  datasets:
    - name: clicks
      source: {location: "%(location)s", key_template: "dt={date}/*.%(ext)s"}
      partitioning: {cadence: daily, start: "2026-11-01"}
      schema:
        columns:
          click_id: {dtype: string, nullable: false, unique: true}
          user_id: {dtype: int64, nullable: false, checks: {ge: 0}}
          page: {dtype: string, nullable: false}
          clicked_at: {dtype: timestamp, nullable: false}
      destination: {table: raw.clicks}
      trigger: {type: landing, settle_seconds: 0}
      ingest_api: %(api)s
"""


def _defs(folder: Path, location: str = "landing/clicks", ext: str = "ndjson", **api: Any) -> Path:
    """A defs folder declaring the clicks dataset, its ingest API's settings overridden."""
    settings = {"time_field": "clicked_at", "idempotency_field": "click_id", "flush_seconds": 0.2}
    (folder / "clicks").mkdir(parents=True)
    api_text = orjson.dumps({**settings, **api}).decode()
    text = DEFS % {"api": api_text, "location": location, "ext": ext}
    (folder / "clicks" / "defs.yaml").write_text(text)
    return folder


class Server:
    """``ingest-assets serve`` in a process of its own, on a free loopback port."""

    def __init__(self, defs: Path, data_dir: Path) -> None:
        self.defs, self.data_dir = defs, data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Server:
        command = "from ingest_assets.cli import main; raise SystemExit(main())"
        self.process = subprocess.Popen(
            [sys.executable, "-c", command, "serve", "--defs", str(self.defs),
             "--port", str(self.port), "--journal", str(self.data_dir / "journal.sqlite")],
            env={**os.environ, "INGEST_ASSETS_DATA_DIR": str(self.data_dir),
                 "INGEST_TOKEN_CLICKS": TOKEN},
            stdout=subprocess.DEVNULL,
            stderr=(self.data_dir / "server.log").open("ab"),
        )  # fmt: skip
        for _ in range(600):
            try:
                if requests.get(f"{self.url}/health", timeout=1).ok:
                    return self
            except requests.ConnectionError:
                pass
            if self.process.poll() is not None:
                raise AssertionError((self.data_dir / "server.log").read_text())
            time.sleep(0.1)
        raise AssertionError("the ingest API did not start")

    def kill(self) -> None:
        """SIGKILL: no flush, no cleanup."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        """SIGTERM: a clean shutdown writes every pending record."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=60)

    def post(self, body: Any, *, key: str | None = None, **headers: str) -> requests.Response:
        sent = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
        if key is not None:
            sent["Idempotency-Key"] = key
        sent.update(headers)
        data = body if isinstance(body, bytes) else orjson.dumps(body)
        return requests.post(f"{self.url}/ingest/clicks", data=data, headers=sent, timeout=30)

    def pending(self) -> int:
        return requests.get(f"{self.url}/health", timeout=5).json()["pending"]["clicks"]


@contextmanager
def serving(tmp_path: Path, data_dir: Path, **settings: Any) -> Iterator[Server]:
    server = Server(_defs(tmp_path / "defs", **settings), data_dir).start()
    try:
        yield server
    finally:
        if server.process is not None and server.process.poll() is None:
            server.process.kill()
            server.process.wait()


def _click(number: int, day: str, *, valid: bool = True) -> dict[str, Any]:
    moment = datetime.fromisoformat(day).replace(tzinfo=UTC) + timedelta(seconds=number % 86_400)
    return {
        "click_id": f"c{number}",
        "user_id": number if valid else -number - 1,  # a negative id breaks ge: 0
        "page": f"/p/{number % 7}",
        "clicked_at": moment.isoformat(),
    }


def _landed(data_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """The landed records by the date in their key."""
    found: dict[str, list[dict[str, Any]]] = {}
    for path in sorted((data_dir / "landing" / "clicks").glob("dt=*/*.ndjson")):
        day = path.parent.name.removeprefix("dt=")
        found.setdefault(day, []).extend(
            orjson.loads(line) for line in path.read_bytes().split(b"\n") if line
        )
    return found


def _dead_letters(data_dir: Path) -> list[dict[str, Any]]:
    folder = data_dir / "landing" / "clicks" / "_dead_letters"
    return [
        orjson.loads(line)
        for path in sorted(folder.glob("*/*.ndjson"))
        for line in path.read_bytes().split(b"\n")
        if line
    ]


def _wait_written(server: Server) -> None:
    for _ in range(300):
        if server.pending() == 0:
            return
        time.sleep(0.1)
    raise AssertionError("pushed records were not written")


def test_records_land_in_the_partition_of_their_event_time_and_invalid_ones_are_dead_letters(
    tmp_path: Path, data_dir: Path
) -> None:
    records = [_click(1, DAYS[2]), _click(2, DAYS[0]), _click(3, DAYS[1], valid=False),
               {**_click(4, DAYS[1]), "clicked_at": "not a time"}, _click(5, DAYS[1]),
               {**_click(6, DAYS[0]), "clicked_at": "2026-10-15T10:00:00Z"}]  # fmt: skip
    with serving(tmp_path, data_dir) as server:
        answer = server.post(records)
        assert answer.status_code == 207, answer.text
        body = answer.json()
        assert (body["received"], body["accepted"], body["rejected"]) == (6, 3, 3)
        errors = {
            e["index"]: [(x["field"], x["rule"]) for x in e["errors"]] for e in body["errors"]
        }
        assert errors[2] == [("user_id", "ge: 0")]
        assert errors[3] == [("clicked_at", "dtype: timestamp")]
        assert errors[5][0][0] == "clicked_at" and errors[5][0][1] == "event time"
        _wait_written(server)
        landed = _landed(data_dir)
        assert {day: sorted(r["click_id"] for r in rows) for day, rows in landed.items()} == {
            DAYS[0]: ["c2"],
            DAYS[1]: ["c5"],
            DAYS[2]: ["c1"],
        }
        dead = _dead_letters(data_dir)
        assert sorted(d["record"]["click_id"] for d in dead) == ["c3", "c4", "c6"]
        assert all(d["errors"] and d["received_at"] for d in dead)
        # every record rejected: 422, and nothing more lands
        answer = server.post([_click(7, DAYS[0], valid=False)])
        assert answer.status_code == 422 and answer.json()["accepted"] == 0


def test_bad_requests_are_refused_whole_with_a_clear_answer(tmp_path: Path, data_dir: Path) -> None:
    with serving(tmp_path, data_dir, max_body_bytes=2000) as server:
        url = f"{server.url}/ingest"
        cases = {
            "malformed": (server.post(b'[{"click_id": "a",'), 400, "Malformed JSON"),
            "not records": (server.post([1, 2]), 400, "not an object"),
            "empty": (server.post([]), 400, "no records"),
            "too deep": (server.post(b'[{"a": ' + b"[" * 300 + b"]" * 300 + b"}]"), 400,
                         "254 levels"),
            "bad ndjson": (server.post(b'{"click_id": "a"}\n{oops\n',
                                       **{"Content-Type": "application/x-ndjson"}), 400, "line 2"),
            "content type": (server.post(b"click_id=a", **{"Content-Type": "text/plain"}), 415,
                             "text/plain"),
            "too large": (server.post([_click(i, DAYS[0]) for i in range(40)]), 413, "2,000 bytes"),
            "no token": (requests.post(f"{url}/clicks", json=[_click(1, DAYS[0])], timeout=10), 401,
                         "token"),
            "wrong token": (server.post([_click(1, DAYS[0])], Authorization="Bearer nope"), 403,
                            "token"),
            "unknown dataset": (requests.post(f"{url}/orders", json=[{}], timeout=10), 404,
                                "clicks"),
        }  # fmt: skip
        for name, (answer, status, text) in cases.items():
            assert answer.status_code == status, (name, answer.text)
            body = answer.json()
            assert text in body["error"] + body["fix"], (name, body)
            assert "Traceback" not in answer.text
        assert server.pending() == 0
        # the OpenAPI document describes the dataset's record from its declared columns
        document = requests.get(f"{server.url}/openapi.json", timeout=10).json()
        body = document["paths"]["/ingest/clicks"]["post"]["requestBody"]["content"]
        record = body["application/json"]["schema"]["oneOf"][0]
        assert record["properties"]["user_id"] == {"type": "integer", "format": "int64"}
        assert record["properties"]["clicked_at"]["format"] == "date-time"
        assert sorted(record["required"]) == ["click_id", "clicked_at", "page", "user_id"]
        assert "bearer" in document["components"]["securitySchemes"]
        # chunked bodies are counted as they stream in, too
        chunks = iter([b"[", b" " * 3000, b"]"])
        answer = requests.post(f"{url}/clicks", data=chunks, timeout=10,
                               headers={"Authorization": f"Bearer {TOKEN}",
                                        "Content-Type": "application/json"})  # fmt: skip
        assert answer.status_code == 413
    assert not (data_dir / "landing" / "clicks").exists() or not _landed(data_dir)


def test_a_retried_request_or_record_lands_once(tmp_path: Path, data_dir: Path) -> None:
    with serving(tmp_path, data_dir) as server:
        first = server.post([_click(1, DAYS[0]), _click(2, DAYS[0])], key="req-1")
        again = server.post([_click(1, DAYS[0]), _click(2, DAYS[0])], key="req-1")
        assert first.status_code == again.status_code == 202
        assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
        # the same records under another request key: acknowledged as duplicates
        other = server.post([_click(2, DAYS[0]), _click(3, DAYS[0]), _click(3, DAYS[0])])
        assert (other.json()["accepted"], other.json()["duplicates"]) == (1, 2)
        _wait_written(server)
    landed = _landed(data_dir)
    assert sorted(r["click_id"] for r in landed[DAYS[0]]) == ["c1", "c2", "c3"]


def test_a_full_journal_answers_429_with_retry_after(tmp_path: Path, data_dir: Path) -> None:
    with serving(tmp_path, data_dir, max_pending_rows=100, flush_seconds=3600) as server:
        answers = [server.post([_click(n * 60 + i, DAYS[0]) for i in range(60)]) for n in range(3)]
        assert [a.status_code for a in answers] == [202, 202, 429]
        assert answers[2].headers["Retry-After"] == "3600"
        assert server.pending() == 120
        server.stop()  # a clean shutdown writes what is pending
    assert len(_landed(data_dir)[DAYS[0]]) == 120


def _load_landed(spec: DatasetSpec, data_dir: Path) -> list[str]:
    """Run the landing sensor once and materialize every partition it asks for."""
    assert isinstance(spec.trigger, LandingTrigger)
    asset = dataset_asset(spec, origin="test")
    resources = {"duckdb": DuckDBResource(database=str(data_dir / "warehouse.duckdb"))}
    defs = dg.Definitions(assets=[asset], sensors=[landing_sensor(spec, spec.trigger)],
                          resources=resources)  # fmt: skip
    sensor = defs.resolve_sensor_def("clicks_landing_sensor")
    context = dg.build_sensor_context(repository_def=defs.get_repository_def(), resources={})
    result = sensor.evaluate_tick(context)
    partitions: list[str] = []
    for request in result.run_requests or []:
        tags = request.tags
        if request.partition_key:
            partitions.append(request.partition_key)
        else:
            first, last = (
                tags["dagster/asset_partition_range_start"],
                tags["dagster/asset_partition_range_end"],
            )
            partitions += [d for d in DAYS if first <= d <= last]
    for partition in partitions:
        run = dg.materialize(
            [asset], partition_key=partition, resources=resources, raise_on_error=False
        )
        assert run.success, partition
    return partitions


def test_ten_thousand_pushed_records_survive_a_kill_and_load_exactly_once(
    tmp_path: Path, data_dir: Path
) -> None:
    """Concurrent clients push 10,000 records (a tenth invalid, some sent twice under another
    request, event times shuffled over 3 days); the server is killed with SIGKILL mid-stream
    and restarted; clients send again what got no answer. Every valid record is loaded once, in
    its event time's partition; every invalid one is a dead letter with its reason."""
    rng = random.Random(7)
    records = [_click(n, rng.choice(DAYS), valid=rng.random() > 0.1) for n in range(10_000)]
    rng.shuffle(records)
    requests_ = [records[i : i + 50] for i in range(0, len(records), 50)]
    requests_ += [rng.sample(records, 20) for _ in range(20)]  # records sent again, other keys
    valid = {r["click_id"]: r for r in records if r["user_id"] >= 0}
    server = Server(_defs(tmp_path / "defs"), data_dir).start()
    outcomes: dict[int, str] = {}

    def push(number: int) -> None:
        try:
            answer = server.post(requests_[number], key=f"request-{number}")
            outcomes[number] = (
                "acknowledged" if answer.status_code in (202, 207, 422) else "refused"
            )
        except requests.ConnectionError:
            outcomes[number] = "no answer"

    try:
        with ThreadPoolExecutor(4) as clients:
            futures = [clients.submit(push, n) for n in range(len(requests_))]
            while len(outcomes) < len(requests_) // 2:
                time.sleep(0.01)
            server.kill()
            for future in futures:
                future.result()
        unanswered = [n for n, outcome in outcomes.items() if outcome != "acknowledged"]
        assert unanswered, "the kill should leave some requests without an answer"
        server.start()
        with ThreadPoolExecutor(4) as clients:
            list(clients.map(push, unanswered))
        assert all(outcome == "acknowledged" for outcome in outcomes.values())
        server.stop()
    finally:
        if server.process is not None and server.process.poll() is None:
            server.process.kill()
    (spec,) = [entry.spec for entry in load_declared(tmp_path / "defs")]
    assert sorted(_load_landed(spec, data_dir)) == DAYS
    rows = query(data_dir, "SELECT click_id, clicked_at::DATE::VARCHAR FROM raw.clicks")
    loaded = Counter(click_id for click_id, _ in rows)
    assert set(loaded) == set(valid) and max(loaded.values()) == 1
    for click_id, day in rows:
        assert valid[click_id]["clicked_at"].startswith(day)
    dead = Counter(d["record"]["click_id"] for d in _dead_letters(data_dir))
    invalid = {r["click_id"] for r in records if r["user_id"] < 0}
    assert set(dead) == invalid


def test_records_pushed_to_an_s3_location_land_as_parquet_objects(
    tmp_path: Path, data_dir: Path, bucket: str, s3_env: str
) -> None:
    """On S3 (moto's server) in Parquet: the objects land under the key template, the dead
    letters beside them, and the landing sensor's load reads them back."""
    import boto3
    import pyarrow.parquet as pq

    location = f"s3://{bucket}/clicks"
    records = [_click(1, DAYS[0]), _click(2, DAYS[1]), _click(3, DAYS[1], valid=False)]
    with serving(tmp_path, data_dir, location=location, ext="parquet") as server:
        assert server.post(records).status_code == 207
        _wait_written(server)
    client = boto3.client("s3", endpoint_url=s3_env, region_name="us-east-1")
    keys = sorted(o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"])
    landed = [k for k in keys if not k.startswith("clicks/_dead_letters/")]
    assert [k.split("/")[1] for k in landed] == [f"dt={DAYS[0]}", f"dt={DAYS[1]}"]
    assert all(k.endswith(".parquet") for k in landed)
    body = client.get_object(Bucket=bucket, Key=landed[1])["Body"].read()
    assert pq.read_table(pa_buffer(body)).column("click_id").to_pylist() == ["c2"]
    (dead,) = [k for k in keys if k.startswith("clicks/_dead_letters/")]
    letter = orjson.loads(client.get_object(Bucket=bucket, Key=dead)["Body"].read())
    assert letter["record"]["click_id"] == "c3" and letter["errors"][0]["field"] == "user_id"


def pa_buffer(data: bytes) -> Any:
    import pyarrow as pa

    return pa.BufferReader(data)
