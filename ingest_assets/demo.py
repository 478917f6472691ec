"""Demo data: a few days of realistic drops and database changes for the demo datasets.

``seed_demo`` writes, for every day from the demo's first partition to yesterday, what the
datasets in ``ingest_assets/defs/demo/`` expect: orders as CSV (two drops a day), page views as
hourly NDJSON, exchange rates as daily Parquet, and the day's new and changed customers in a
SQLite application database. Content is a pure function of the date; days already seeded are
left alone. The fifth day carries bad amounts so that the validation gate can be seen in the UI
failing a partition, and the third two malformed emails, quarantined while the rest loads.
"""

from __future__ import annotations

import csv
import json
import logging
import random
import sqlite3
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

DEMO_START = date(2026, 11, 1)
#: The demo day whose orders break the schema (negative amounts: the partition fails).
BAD_DAY = DEMO_START + timedelta(days=4)
#: The demo day with two malformed emails (a warn rule: the rows are quarantined, the rest load).
WARN_DAY = DEMO_START + timedelta(days=2)
_COUNTRIES = ["DE", "FR", "US", "GB", "NL", "ES", "IT", "PL", "SE", "BR"]
_CURRENCIES = {"EUR": 1.0, "USD": 1.08, "GBP": 0.86, "SEK": 11.5, "PLN": 4.3, "BRL": 5.9}
_STATUSES = ["placed", "paid", "shipped", "cancelled"]
_PAGES = ["/", "/search", "/product", "/cart", "/checkout", "/help"]
_log = logging.getLogger(__name__)


def orders_rows(day: date, part: int, rows: int = 120) -> list[dict[str, str]]:
    """Rows of one orders drop: deterministic for a day and part."""
    rng = random.Random(f"orders-{day.isoformat()}-{part}")
    out = []
    for i in range(rows):
        moment = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(
            seconds=rng.randrange(86_400)
        )
        customer = rng.randrange(1, 5_000)
        out.append(
            {
                "order_id": f"o-{day:%Y%m%d}-{part}-{i:05d}",
                "customer_email": f"customer{customer}@example.com",
                "amount": f"{rng.uniform(3, 400):.2f}",
                "currency": rng.choice(list(_CURRENCIES)),
                "country": rng.choice(_COUNTRIES),
                "status": rng.choice(_STATUSES),
                "ordered_at": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
        )
    if day == BAD_DAY and part == 1:
        out[7]["amount"] = "-12.50"
        out[42]["amount"] = "-3.00"
        out[99]["customer_email"] = "not-an-email"
    if day == WARN_DAY and part == 2:
        out[5]["customer_email"] = "customer-at-example.com"
        out[77]["customer_email"] = "customer@example"
    return out


def _write_orders(root: Path, day: date) -> None:
    folder = root / "orders" / f"dt={day.isoformat()}"
    folder.mkdir(parents=True, exist_ok=True)
    for part in (1, 2):
        rows = orders_rows(day, part)
        with (folder / f"orders_{part}.csv").open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)


def _write_page_views(root: Path, day: date) -> None:
    folder = root / "web" / f"{day:%Y}" / f"{day:%m}" / f"{day:%d}"
    folder.mkdir(parents=True, exist_ok=True)
    for hour in range(24):
        rng = random.Random(f"views-{day.isoformat()}-{hour}")
        with (folder / f"{hour:02d}.jsonl").open("w") as handle:
            for _ in range(rng.randrange(20, 60)):
                moment = datetime(day.year, day.month, day.day, hour, tzinfo=UTC) + timedelta(
                    seconds=rng.randrange(3_600)
                )
                record = {
                    "session_id": f"s{rng.randrange(10**8):08d}",
                    "page": rng.choice(_PAGES),
                    "duration_ms": rng.randrange(50, 120_000),
                    "country": rng.choice(_COUNTRIES),
                    "viewed_at": moment.isoformat(),
                }
                handle.write(json.dumps(record) + "\n")


def _write_fx_rates(root: Path, day: date) -> None:
    folder = root / "fx" / f"{day:%Y}" / f"{day:%m}"
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(f"fx-{day.isoformat()}")
    table = pa.table(
        {
            "rate_date": pa.array([day] * len(_CURRENCIES), pa.date32()),
            "currency": list(_CURRENCIES),
            "eur_rate": [round(base * rng.uniform(0.98, 1.02), 6) for base in _CURRENCIES.values()],
        }
    )
    pq.write_table(table, folder / f"{day:%d}.parquet")


_TIERS = ["free", "plus", "pro"]
#: The demo application database (SQLite) the ``customers`` dataset reads.
APP_DB_NAME = "demo_app.sqlite"


def _write_app_db(database: Path, day: date) -> None:
    """Apply one day of changes to the demo application database: new and updated customers."""
    rng = random.Random(f"customers-{day.isoformat()}")
    with sqlite3.connect(database) as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS customers (id INTEGER PRIMARY KEY, name TEXT, email TEXT, "
            "country TEXT, tier TEXT, updated_at TEXT NOT NULL)"
        )
        (count,) = conn.execute("SELECT count(*) FROM customers").fetchone()
        new = 300 if count == 0 else rng.randrange(3, 8)
        changed = [] if count == 0 else rng.sample(range(1, count + 1), k=min(count, 12))
        rows = []
        for customer in [*changed, *range(count + 1, count + new + 1)]:
            moment = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(
                seconds=rng.randrange(86_400)
            )
            rows.append(
                (
                    customer,
                    f"Customer {customer}",
                    f"customer{customer}@example.com",
                    rng.choice(_COUNTRIES),
                    rng.choice(_TIERS),
                    moment.strftime("%Y-%m-%d %H:%M:%S"),
                )
            )
        conn.executemany(
            "INSERT INTO customers VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
            "country = excluded.country, tier = excluded.tier, updated_at = excluded.updated_at",
            rows,
        )


def seed_demo(data_dir: Path, *, until: date | None = None) -> int:
    """Write the demo landing files for every missing day up to ``until`` (default: yesterday).

    Returns:
        The number of days written.
    """
    root = data_dir / "landing"
    last = until or (datetime.now(UTC).date() - timedelta(days=1))
    written = 0
    day = DEMO_START
    while day <= last:
        marker = root / ".seeded" / day.isoformat()
        if not marker.exists():
            _write_orders(root, day)
            _write_page_views(root, day)
            _write_fx_rates(root, day)
            _write_app_db(data_dir / APP_DB_NAME, day)
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.touch()
            written += 1
        day += timedelta(days=1)
    _log.info("seeded %d demo days under %s", written, root)
    return written
