"""Dashboard callbacks over HTTP against a generated portfolio of 1,000,000 cases.

The benchmark creates a database of its own on the configured server
(`DATABASE_URL`) and fills it with `bench.portfolio_data`. It starts `app.py web`
(gunicorn) on a free loopback port, logs in as each page's user and posts every
read-only callback to `/_dash-update-component` with the body the Dash renderer
sends. It prints p50 and p95 of the server time (the `Server-Timing` header), the
response size and the web processes' resident memory, then drops the database.

    python -m bench.dashboard [--cases 1000000] [--requests 40]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dash
import plotly
import requests
import sqlalchemy
from sqlalchemy import Engine, text

from bench.common import bench_database
from bench.portfolio_data import generate_portfolio
from core import accounts, rollups
from core.config import PROJECT_ROOT, load_settings
from core.db import make_sessionmaker
from core.runtime import Runtime

PASSWORD = "bench password 1"
# username -> (role, study ids granted); sponsor 1 owns studies 1, 26, 51 and 76.
USERS = {
    "bench_leader": ("leadership", ()),
    "bench_manager": ("study_manager", (1,)),
    "bench_sponsor": ("sponsor", (1, 26, 51, 76)),
}
PAGE_USERS = {
    "portfolio": "bench_leader",
    "study": "bench_manager",
    "capacity": "bench_manager",
    "sponsor": "bench_sponsor",
    "quarantine": "bench_leader",
    "case": "bench_leader",
}
# Input values as the browser sends them after the page opened with its defaults.
VALUES = {
    "study-select.value": 1,
    "sponsor-select.value": 1,
    "capacity-study.value": 1,
    "capacity-weeks.value": 12,
    "capacity-readers.value": 2,
    "case-id.value": 1,
    "portfolio-range.value": 30,
    "study-range.value": 30,
    "sponsor-range.value": 30,
    "portfolio-group.value": "study",
    "portfolio-interval.n_intervals": 1,
    "study-interval.n_intervals": 1,
    "sponsor-interval.n_intervals": 1,
    "quarantine-interval.n_intervals": 1,
}
# Extra runs of a callback with the widest choices a user can make.
VARIANTS = {
    "portfolio-range.value": [365],
    "portfolio-group.value": ["sponsor"],
    "study-range.value": [365],
}
PAGE_PATHS = ["/portfolio", "/study", "/capacity", "/sponsor", "/quarantine", "/case"]


@dataclasses.dataclass
class Measure:
    name: str
    user: str
    times_ms: list[float]
    sizes: list[int]

    def row(self) -> str:
        ordered = sorted(self.times_ms)
        p95 = ordered[max(0, round(0.95 * len(ordered)) - 1)]
        return (
            f"| {self.name} | {self.user} | {statistics.median(ordered):.1f} | "
            f"{p95:.1f} | {max(self.sizes) / 1024:,.1f} |"
        )


# --- set-up ---------------------------------------------------------------------


def add_users(engine: Engine) -> None:
    with make_sessionmaker(engine).begin() as session:
        for username, (role, study_ids) in USERS.items():
            accounts.create_user(
                session,
                username,
                PASSWORD,
                role,
                timezone="Europe/Berlin",
                study_ids=study_ids,
            )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def web_process(url: str, data_dir: Path) -> Iterator[tuple[str, int]]:
    """Run `app.py web` against `url`; yield its base URL and process id."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "IMAGINGOPS_WEB_PORT": str(port),
        "IMAGINGOPS_DATA_DIR": str(data_dir),
        "IMAGINGOPS_LOG_LEVEL": "WARNING",
    }
    command = [sys.executable, str(PROJECT_ROOT / "app.py"), "web", "--workers", "2"]
    log = (data_dir / "web.log").open("wb")
    process = subprocess.Popen(command, env=env, stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"web process exited with {process.returncode}")
            try:
                requests.get(f"{base}/login", timeout=5)
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield base, process.pid
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def login(base: str, username: str) -> requests.Session:
    client = requests.Session()
    page = client.get(f"{base}/login", timeout=30).text
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    if match is None:
        raise RuntimeError("the login page has no CSRF token")
    form = {"username": username, "password": PASSWORD, "csrf_token": match[1]}
    response = client.post(f"{base}/login", data=form, timeout=30)
    response.raise_for_status()
    client.headers["X-CSRFToken"] = client.cookies["_csrf_token"]
    return client


# --- callback bodies ------------------------------------------------------------


def _key(component_id: Any, prop: str) -> str:
    if isinstance(component_id, dict):
        component_id = json.dumps(component_id, sort_keys=True, separators=(",", ":"))
    return f"{component_id}.{prop}"


def _body(spec: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """Build the JSON the Dash renderer posts for one callback."""
    outputs = spec["output"] if isinstance(spec["output"], list) else [spec["output"]]
    output_items = [
        {"id": o.component_id, "property": o.component_property} for o in outputs
    ]
    keys = [_key(o.component_id, o.component_property) for o in outputs]

    def item(entry: dict[str, Any]) -> dict[str, Any]:
        value = values.get(f"{entry['id']}.{entry['property']}")
        return {"id": entry["id"], "property": entry["property"], "value": value}

    inputs = [item(entry) for entry in spec["inputs"]]
    return {
        "output": keys[0] if len(keys) == 1 else ".." + "...".join(keys) + "..",
        "outputs": output_items[0] if len(output_items) == 1 else output_items,
        "inputs": inputs,
        "state": [item(entry) for entry in spec["state"]],
        "changedPropIds": [_key(i["id"], i["property"]) for i in inputs[:1]],
    }


def router_body(path: str) -> dict[str, Any]:
    """Build the body of Dash's page router callback, which runs a page's layout.

    Dash registers the router on the app's first request, so it is not yet in the
    callback map that `callback_bodies` reads.
    """
    outputs = [
        {"id": "_pages_content", "property": "children"},
        {"id": "_pages_store", "property": "data"},
    ]
    return {
        "output": ".._pages_content.children..._pages_store.data..",
        "outputs": outputs,
        "inputs": [
            {"id": "_pages_location", "property": "pathname", "value": path},
            {"id": "_pages_location", "property": "search", "value": ""},
        ],
        "state": [],
        "changedPropIds": ["_pages_location.pathname"],
    }


def _page(spec: dict[str, Any]) -> str:
    first = spec["inputs"][0]["id"]
    return str(first["name"] if isinstance(first, dict) else first).split("-")[0]


def _on_click(spec: dict[str, Any]) -> bool:
    return any(entry["property"] == "n_clicks" for entry in spec["inputs"])


def callback_bodies(engine: Engine, data_dir: Path) -> list[tuple[str, str, dict]]:
    """Return (name, page, body) for every read-only server callback of the app."""
    from dashboard.app import create_app

    settings = dataclasses.replace(load_settings(), data_dir=data_dir)
    url = engine.url.render_as_string(hide_password=False)
    app = create_app(Runtime(settings, url, engine, make_sessionmaker(engine)))
    bodies = [(f"open {path}", path[1:], router_body(path)) for path in PAGE_PATHS]
    for spec in app.callback_map.values():
        if spec.get("callback") is None or _on_click(spec):
            continue
        name = spec["callback"].__module__.rsplit(".", 1)[-1] + "."
        name += spec["callback"].__name__
        bodies.append((name, _page(spec), _body(spec, VALUES)))
        for key, choices in VARIANTS.items():
            if any(f"{i['id']}.{i['property']}" == key for i in spec["inputs"]):
                for choice in choices:
                    label = f"{name} ({key.split('.')[0]}={choice})"
                    body = _body(spec, VALUES | {key: choice})
                    bodies.append((label, _page(spec), body))
    return bodies


# --- measuring ------------------------------------------------------------------


def measure(
    client: requests.Session, base: str, name: str, user: str, body: dict, count: int
) -> Measure:
    result = Measure(name, user, [], [])
    for attempt in range(count + 3):
        response = client.post(f"{base}/_dash-update-component", json=body, timeout=60)
        if response.status_code not in (200, 204):
            raise RuntimeError(f"{name}: HTTP {response.status_code} {response.text}")
        if attempt < 3:
            continue  # warm-up: imports, plans and the connection pool
        timing = response.headers["Server-Timing"]
        result.times_ms.append(float(timing.split("dur=")[1]))
        result.sizes.append(len(response.content))
    return result


def rss_mib(pid: int) -> tuple[float, float]:
    """Return (largest single process, total) resident memory of `pid` and children."""
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    pids += [int(child) for child in children]
    sizes = []
    for each in pids:
        for line in Path(f"/proc/{each}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                sizes.append(int(line.split()[1]) / 1024)
    return max(sizes), sum(sizes)


def machine(engine: Engine) -> str:
    model = platform.processor()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    memory_kib = int(Path("/proc/meminfo").read_text().split()[1])
    with engine.connect() as conn:
        server = conn.execute(text("SHOW server_version")).scalar()
    return (
        f"{model}, nproc {os.cpu_count()}, RAM {memory_kib / 1024**2:.0f} GiB; "
        f"Python {platform.python_version()}, PostgreSQL {server}, "
        f"SQLAlchemy {sqlalchemy.__version__}, Dash {dash.__version__}, "
        f"Plotly {plotly.__version__}"
    )


def run(cases: int, count: int) -> None:
    with bench_database("dashboard") as engine, tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        with engine.begin() as conn:
            generate_portfolio(conn, cases=cases)
        # Autovacuum would do this soon after such a load; index-only scans need it.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM (ANALYZE)"))
        print(f"Generated {cases:,} cases in {time.perf_counter() - started:.0f} s")
        started = time.perf_counter()
        with make_sessionmaker(engine).begin() as session:
            rollups.rebuild(session, datetime.now(UTC))
        print(f"Rebuilt the rollups in {time.perf_counter() - started:.1f} s")
        add_users(engine)
        bodies = callback_bodies(engine, Path(tmp))
        url = engine.url.render_as_string(hide_password=False)
        with web_process(url, Path(tmp)) as (base, pid):
            clients = {user: login(base, user) for user in USERS}
            results = [
                measure(
                    clients[PAGE_USERS[page]], base, name, PAGE_USERS[page], body, count
                )
                for name, page, body in bodies
            ]
            largest, total = rss_mib(pid)
            load = os.getloadavg()
        print(machine(engine))
        print(f"{count} requests per callback after 3 warm-up requests")
        print("| callback | user | p50 ms | p95 ms | max response KiB |")
        print("|---|---|---:|---:|---:|")
        for result in results:
            print(result.row())
        print(f"Web RSS: largest process {largest:.0f} MiB, all {total:.0f} MiB")
        # Other work on the machine inflates the times; the load shows how much.
        print(
            f"Load average at the end (1, 5, 15 min): {load[0]:.1f}, "
            f"{load[1]:.1f}, {load[2]:.1f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--cases", type=int, default=1_000_000, help="cases to generate"
    )
    parser.add_argument(
        "--requests", type=int, default=40, help="requests per callback"
    )
    args = parser.parse_args()
    run(args.cases, args.requests)


if __name__ == "__main__":
    main()
