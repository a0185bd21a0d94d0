"""Load, swap and fuzz checks for a running Unitscope site, driven over HTTP like a browser would.

Simulated users open pages the way the Dash renderer does -- GET the page, GET `/_dash-layout` and
`/_dash-dependencies`, POST the page router's callback with the URL's path and query, then POST every
callback the new page fires on load (with the values in its layout), follow chained callbacks once,
change filters (dropdowns, radio items) and follow the navigation they trigger -- and sometimes fetch a
stimulus image or a data export. Nothing here imports the app: it works against any deployment
(`python -m deploy.loadcheck --url http://host:8050 --users 20 --seconds 60`), the benchmarks and the
tests use it against gunicorn on loopback, and the fuzz cases also run in-process (Flask's test client).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import random
import statistics
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from deploy.dash_protocol import (  # noqa: F401 - re-exported: tests and benchmarks drive sites with them
    PAGE_PARAMS,
    ROUTER_OUTPUT,
    Callback,
    DashSite,
    Transport,
    hrefs,
    parse_outputs,
    walk_components,
)

log = logging.getLogger(__name__)


OK_STATUSES = (200, 204)


# ---------------------------------------------------------------------------------------------- transports
class HttpTransport:
    """requests.Session against a base URL (keep-alive, like a browser tab); optional credentials."""

    def __init__(
        self, base_url: str, *, auth: tuple[str, str] | None = None, token: str | None = None, timeout_s: float = 60.0
    ):
        import requests

        self.base_url = base_url.rstrip("/")
        self.session = requests.Session()
        if auth:
            self.session.auth = auth
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"
        self.timeout_s = timeout_s

    def get(self, path: str) -> tuple[int, bytes]:
        resp = self.session.get(self.base_url + path, timeout=self.timeout_s, allow_redirects=False)
        return resp.status_code, resp.content

    def post_json(self, path: str, payload: dict) -> tuple[int, bytes]:
        resp = self.session.post(self.base_url + path, json=payload, timeout=self.timeout_s)
        return resp.status_code, resp.content


class FlaskTransport:
    """Flask's test client: the same requests in-process (for audit hooks and fast tests)."""

    def __init__(self, server):
        self.client = server.test_client()

    def get(self, path: str) -> tuple[int, bytes]:
        resp = self.client.get(path)
        return resp.status_code, resp.get_data()

    def post_json(self, path: str, payload: dict) -> tuple[int, bytes]:
        resp = self.client.post(path, json=payload)
        return resp.status_code, resp.get_data()


# ---------------------------------------------------------------------------------------------- recording
@dataclass
class Sample:
    kind: str
    target: str
    status: int
    seconds: float
    error: str = ""


@dataclass
class Recorder:
    """Thread-safe list of timed requests."""

    samples: list[Sample] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, sample: Sample) -> None:
        with self._lock:
            self.samples.append(sample)

    def errors(self) -> list[Sample]:
        return [s for s in self.samples if s.error or s.status not in OK_STATUSES]

    def summary(self) -> dict[str, Any]:
        times = sorted(s.seconds for s in self.samples)
        if not times:
            return {"requests": 0, "errors": 0}
        return {
            "requests": len(times),
            "errors": len(self.errors()),
            "p50_s": percentile(times, 50),
            "p95_s": percentile(times, 95),
            "p99_s": percentile(times, 99),
            "max_s": times[-1],
            "mean_s": statistics.fmean(times),
        }

    def by_kind(self) -> dict[str, dict[str, float]]:
        out = {}
        for kind in sorted({s.kind for s in self.samples}):
            t = sorted(s.seconds for s in self.samples if s.kind == kind)
            out[kind] = {"n": len(t), "p50_s": percentile(t, 50), "p95_s": percentile(t, 95), "max_s": t[-1]}
        return out


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return float("nan")
    k = max(0, min(len(sorted_values) - 1, math.ceil(q / 100 * len(sorted_values)) - 1))
    return sorted_values[k]


# ---------------------------------------------------------------------------------------------- a simulated user
class User:
    """One browser tab: opens pages, lets their callbacks run, changes filters, exports, views images."""

    def __init__(
        self,
        transport: Transport,
        site: DashSite,
        recorder: Recorder,
        rng: random.Random,
        on_page: Callable[[str, dict], None] | None = None,
    ):
        self.t = transport
        self.site = site
        self.rec = recorder
        self.rng = rng
        self.on_page = on_page
        self.props: dict[str, dict] = {}
        self.content: Any = None

    def _timed(self, kind: str, target: str, fn: Callable[[], tuple[int, bytes]]) -> tuple[int, bytes]:
        t0 = time.perf_counter()
        try:
            status, body = fn()
        except Exception as exc:  # a refused or reset connection is a failed request, not a crash of the check
            self.rec.add(Sample(kind, target, 0, time.perf_counter() - t0, f"{type(exc).__name__}: {exc}"))
            return 0, b""
        err = "" if status in OK_STATUSES else body[:300].decode("utf-8", "replace")
        self.rec.add(Sample(kind, target, status, time.perf_counter() - t0, err))
        return status, body

    def open_page(self, path: str, query: dict | None = None, *, depth: int = 0) -> None:
        search = "?" + urlencode(query) if query else ""
        self._timed("page", path, lambda: self.t.get(path + search))
        status, body = self._timed("layout", "/_dash-layout", lambda: self.t.get("/_dash-layout"))
        self.props = walk_components(json.loads(body), {}) if status == 200 else {}
        payload = {
            "output": ROUTER_OUTPUT,
            "outputs": parse_outputs(ROUTER_OUTPUT),
            "inputs": [
                {"id": "_pages_location", "property": "pathname", "value": path},
                {"id": "_pages_location", "property": "search", "value": search},
            ],
            "state": [],
            "changedPropIds": ["_pages_location.pathname", "_pages_location.search"],
        }
        status, body = self._timed("router", path, lambda: self.t.post_json("/_dash-update-component", payload))
        if status != 200:
            return
        content = json.loads(body)["response"]["_pages_content"]["children"]
        self.content = content
        if self.on_page is not None:
            self.on_page(path, content)
        walk_components(content, self.props)
        initial = [cb for cb in self.site.callbacks if not cb.prevent_initial_call]
        self._follow(self._fire(initial, changed=None), depth=depth)

    def _fire(self, callbacks: Iterable[Callback], changed: list[str] | None) -> set[str]:
        """POST each callback that can run on this page; apply its outputs; return the props it changed."""
        out: set[str] = set()
        for cb in callbacks:
            trig = changed if changed is not None else sorted(cb.input_keys())
            payload = cb.payload(self.props, trig)
            if payload is None:
                continue
            status, body = self._timed(
                "callback", cb.output[:80], lambda p=payload: self.t.post_json("/_dash-update-component", p)
            )
            if status != 200 or not body:
                continue
            for cid, values in json.loads(body).get("response", {}).items():
                comp = self.props.get(cid)
                if comp is None:
                    continue
                for prop, value in values.items():
                    if comp.get(prop) != value:
                        comp[prop] = value
                        out.add(f"{cid}.{prop}")
                        if prop == "children":
                            walk_components(value, self.props)
        return out

    def _follow(self, changed: set[str], *, depth: int) -> None:
        """One round of chained callbacks, then follow a navigation a callback asked for (dcc.Location)."""
        chained = [cb for cb in self.site.callbacks if cb.input_keys() & changed]
        more = self._fire(chained, changed=sorted(changed)) if chained else set()
        for key in sorted(changed | more):
            cid, _, prop = key.rpartition(".")
            comp = self.props.get(cid, {})
            if prop == "href" and comp.get("_type") == "Location" and depth < 1:
                href = comp.get(prop)
                if isinstance(href, str) and href.startswith("/"):
                    path, _, query = href.partition("?")
                    self.open_page(
                        path, dict(pair.split("=", 1) for pair in query.split("&") if "=" in pair), depth=depth + 1
                    )
                return

    def change_filter(self) -> bool:
        """Pick a dropdown or radio item an input of some callback and set it to another of its options."""
        inputs = {d["id"] for cb in self.site.callbacks for d in cb.inputs}
        choices = []
        for key, comp in self.props.items():
            opts = comp.get("options")
            if key in inputs and opts and "value" in comp:
                values = [
                    o.get("value") if isinstance(o, dict) else o
                    for o in (opts.items() if isinstance(opts, dict) else opts)
                ]
                values = [v for v in values if v != comp.get("value") and not isinstance(v, (list, dict))]
                if values:
                    choices.append((key, values))
        if not choices:
            return False
        key, values = self.rng.choice(sorted(choices, key=lambda c: c[0]))
        self.props[key]["value"] = self.rng.choice(values)
        changed = {f"{key}.value"}
        cbs = [cb for cb in self.site.callbacks if cb.input_keys() & changed]
        more = self._fire(cbs, changed=sorted(changed))
        self._follow(more, depth=0)
        return True

    def extras(self) -> None:
        """What else a browsing user fetches: a stimulus image, a data export of a figure on the page."""
        for comp in list(self.props.values()):
            src = comp.get("src")
            if isinstance(src, str) and src.startswith("/stimulus/"):
                self._timed("image", "/stimulus", lambda s=src: self.t.get(s))
                break
        links = sorted(h for h in hrefs(self.content, "/export/") if h.endswith((".csv", ".parquet")))
        if links:
            href = self.rng.choice(links)
            query = {k: v for k, v in self._page_state().items() if v}
            self._timed("export", href.split("?")[0], lambda: self.t.get(href + ("?" + urlencode(query))))

    def _page_state(self) -> dict[str, str]:
        """The page's URL state (what assets/exports.js appends to export links)."""
        for key, comp in self.props.items():
            if key.startswith("{") and '"url-query"' in key and isinstance(comp.get("data"), str):
                return dict(pair.split("=", 1) for pair in comp["data"].lstrip("?").split("&") if "=" in pair)
        return {}

    def browse(self, until: float | None = None, think_s: float = 0.0, pages: int | None = None) -> None:
        """Browse random pages with random filters until the monotonic clock reaches `until` (a load test),
        or for `pages` pages (a fixed workload: the same requests for a seed, however slow the machine)."""
        opened = 0

        def more() -> bool:
            return (until is None or time.monotonic() < until) and (pages is None or opened < pages)

        while more():
            self.open_page(self.rng.choice(self.site.pages))
            opened += 1
            for _ in range(self.rng.randint(1, 3)):
                if (until is not None and time.monotonic() >= until) or not self.change_filter():
                    break
            if self.rng.random() < 0.3:
                self.extras()
            if think_s:
                time.sleep(self.rng.uniform(0, 2 * think_s))


def run_load(
    make_transport: Callable[[], Transport],
    *,
    users: int,
    seconds: float | None = None,
    pages: int | None = None,
    seed: int = 0,
    think_s: float = 0.0,
    on_page: Callable[[str, dict], None] | None = None,
    wait_s: float = 600,
) -> Recorder:
    """`users` simulated users, each on its own connection, browsing for `seconds` (a load test) or for
    `pages` pages each (a fixed workload, for tests: what it does does not depend on the machine's speed);
    returns every request. `wait_s` bounds the wait for a user that hangs."""
    if (seconds is None) == (pages is None):
        raise ValueError("run_load needs seconds or pages (one of them)")
    site = DashSite(make_transport())
    rec = Recorder()
    until = None if seconds is None else time.monotonic() + seconds
    threads = [
        threading.Thread(
            target=User(make_transport(), site, rec, random.Random(seed * 1000 + i), on_page).browse,
            args=(until, think_s, pages),
            name=f"user-{i}",
            daemon=True,
        )
        for i in range(users)
    ]
    for th in threads:
        th.start()
    for th in threads:
        th.join((seconds or 0) + wait_s)
    return rec


# ---------------------------------------------------------------------------------------------- CLI
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m deploy.loadcheck", description="Simulated users browsing a running Unitscope site."
    )
    parser.add_argument("--url", default="http://127.0.0.1:8050")
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--user", default=None, help="basic-auth user (password from --password)")
    parser.add_argument("--password", default=None)
    parser.add_argument("--token", default=None, help="bearer token")
    args = parser.parse_args(argv)
    auth = (args.user, args.password or "") if args.user else None
    rec = run_load(lambda: HttpTransport(args.url, auth=auth, token=args.token), users=args.users, seconds=args.seconds)
    print(json.dumps({"summary": rec.summary(), "by_kind": rec.by_kind()}, indent=2))
    for s in rec.errors()[:20]:
        print(f"ERROR {s.kind} {s.target}: {s.status} {s.error[:200]}")
    return 1 if rec.errors() else 0


if __name__ == "__main__":
    raise SystemExit(main())
