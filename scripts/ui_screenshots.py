"""Screenshots of the Dagster UI after a ten-day backfill with one bad day, by headless Chromium.

The demo's orders for 2026-11-01..10 are loaded in one backfill while 2026-11-05 holds a negative
amount: the UI should show nine days materialized with their own row counts, one failed with its
reason, each day's checks, and the quarantined day's passing check with its warning. The script
starts ``dg dev`` on a free loopback port over a throwaway home and data folder, launches the
backfill over GraphQL, waits for it, and photographs the asset page, the failed partition, its
checks, the backfill and the events with their plots.

Usage (Debian's ``chromium`` package installed)::

    .venv/bin/python scripts/ui_screenshots.py docs/screenshots
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

import requests

from ingest_assets.demo import seed_demo
from ingest_assets.paths import PROJECT_ROOT

_log = logging.getLogger("ui_screenshots")
DAYS = [f"2026-11-{day:02d}" for day in range(1, 11)]
BAD_DAY = "2026-11-05"
LAUNCH = """
mutation Launch($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message }
  }
}
"""
STATUS = """
query Status($id: String!) { partitionBackfillOrError(backfillId: $id) {
  ... on PartitionBackfill { status } } }
"""
LOADED = "{ workspaceOrError { ... on Workspace { locationEntries { loadStatus } } } }"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _graphql(url: str, text: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    answer = requests.post(
        f"{url}/graphql", json={"query": text, "variables": variables or {}}, timeout=60
    )
    answer.raise_for_status()
    return answer.json()["data"]


def _break_a_day(data: Path) -> None:
    """Give one order of the bad day a negative amount (an error rule: the day fails)."""
    path = sorted((data / "landing/orders" / f"dt={BAD_DAY}").glob("*.csv"))[0]
    header, first, *rest = path.read_text().splitlines()
    fields = first.split(",")
    fields[header.split(",").index("amount")] = "-5"
    path.write_text("\n".join([header, ",".join(fields), *rest]) + "\n")


def _wait(url: str, seconds: float, ready: Any) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if ready():
                return
        except requests.RequestException:
            pass
        time.sleep(2)
    raise TimeoutError(f"{url} was not ready within {seconds} s")


def _backfill(url: str) -> str:
    """Launch the ten-day backfill of orders and wait until it ends; its id."""
    launched = _graphql(
        url,
        LAUNCH,
        {"params": {"partitionNames": DAYS, "assetSelection": [{"path": ["orders"]}]}},
    )["launchPartitionBackfill"]
    backfill_id = str(launched["backfillId"])

    def ended() -> bool:
        status = _graphql(url, STATUS, {"id": backfill_id})["partitionBackfillOrError"]["status"]
        return status not in ("REQUESTED", "CANCELING", "FAILING")

    _wait(url, 600, ended)
    return backfill_id


def _photograph(browser: str, url: str, out: Path) -> None:
    """One page, rendered once its data has loaded (virtual time waits for pending fetches)."""
    subprocess.run(
        [browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         "--window-size=1500,1000", "--virtual-time-budget=40000",
         "--run-all-compositor-stages-before-draw", f"--screenshot={out}", url],
        check=True, capture_output=True, timeout=180,
    )  # fmt: skip
    _log.info("wrote %s", out)


def main(out: Path) -> None:
    """Start the UI over the demo, backfill ten days with one bad, photograph the pages."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        raise SystemExit("Chromium is not installed: apt-get install chromium")
    out.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="ui-screenshots-"))
    home, data = root / "home", root / "data"
    home.mkdir()
    shutil.copy(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
    (home / ".nux").mkdir()  # the first-visit dialog, seen: it would cover every page
    (home / ".nux" / "nux.yaml").write_text("seen: 1\n")
    seed_demo(data, until=date.fromisoformat(DAYS[-1]))
    _break_a_day(data)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "INGEST_ASSETS_DATA_DIR": str(data),
        "DEMO_APP_DB_URL": f"sqlite:///{data / 'demo_app.sqlite'}",
        "INGEST_MASKING_SALT": "screenshots-salt",
    }
    dg = Path(sys.executable).parent / "dg"
    command = [str(dg), "dev", "-w", str(PROJECT_ROOT / "workspace.yaml"), "-h", "127.0.0.1",
               "-p", str(port)]  # fmt: skip
    with (root / "dagster.log").open("wb") as log:
        server = subprocess.Popen(command, cwd=home, env=env, stdout=log, stderr=log,
                                  start_new_session=True)  # fmt: skip
    try:
        _wait(url, 300, lambda: _graphql(url, LOADED)["workspaceOrError"]["locationEntries"])
        backfill_id = _backfill(url)
        pages = {
            "asset": f"{url}/assets/orders",
            "partitions": f"{url}/assets/orders?view=partitions&partition={BAD_DAY}",
            "quarantined_day": f"{url}/assets/orders?view=partitions&partition=2026-11-03",
            "checks": f"{url}/assets/orders?view=checks",
            "failed_check": f"{url}/assets/orders?view=checks&checkDetail=schema",
            "backfill": f"{url}/runs/b/{backfill_id}",
            "events_and_plots": f"{url}/assets/orders?view=events",
        }
        for name, page in pages.items():
            _photograph(browser, page, out / f"{name}.png")
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=60)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else PROJECT_ROOT / "docs" / "screenshots")
