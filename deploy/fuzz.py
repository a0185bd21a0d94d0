"""Fuzz cases for a running Unitscope site: malformed URL parameters, callback payloads and export names,
each of which must get a clear 4xx (never a 500 or a traceback); run over HTTP or Flask's test client."""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Iterable
from urllib.parse import quote, urlencode

from deploy.dash_protocol import PAGE_PARAMS, ROUTER_OUTPUT, DashSite, Transport, hrefs, parse_outputs

log = logging.getLogger(__name__)


def fuzz_values(secret_path: str | None = None) -> list[str]:
    """Hostile and odd parameter values: paths, SQL, DuckDB file functions, encodings, sizes, numbers."""
    values = [
        "../../../../etc/passwd",
        "/etc/passwd",
        "..%2F..%2F..%2Fetc%2Fpasswd",
        "....//....//etc/passwd",
        "file:///etc/passwd",
        "C:\\Windows\\win.ini",
        "/proc/self/environ",
        "~/.ssh/id_rsa",
        "data/unitscope.duckdb",
        "' OR '1'='1",
        "'; DROP TABLE sites; --",
        "mini'; DELETE FROM matches; --",
        "1; SELECT * FROM build_info",
        "x' UNION SELECT value FROM build_info --",
        "read_csv('/etc/passwd')",
        "'||read_text('/etc/passwd')||'",
        "$model",
        "?",
        "%s%s%s%n",
        "{0}{1}",
        "${jndi:ldap://127.0.0.1/a}",
        "__import__('os').system('id')",
        "<script>alert(1)</script>",
        '"><img src=x onerror=alert(1)>',
        "\x00",
        "a\x00b",
        "%00",
        "\r\nX-Bad: 1",
        "",
        " ",
        "-1",
        "0",
        "99999999999999999999999",
        "1e309",
        "NaN",
        "inf",
        "-0",
        "3.5",
        "0x10",
        "[]",
        "{}",
        "null",
        "true",
        "é🧠ñ",
        "IT" * 60,
        "x" * 199,
        "x" * 201,
        "y" * 5000,
        "mini",
        "toy",
        "IT",
        "V4",
        "1",
        "2",
    ]
    if secret_path:
        values += [
            secret_path,
            f"read_text('{secret_path}')",
            f"'||(SELECT content FROM read_text('{secret_path}'))||'",
        ]
    return values


#: static routes with traversal and encoding tricks (every one must answer 404/400, never a file)
STATIC_PATHS = (
    "/assets/../../etc/passwd",
    "/assets/%2e%2e/%2e%2e/etc/passwd",
    "/assets/..%2f..%2fapp.py",
    "/_dash-component-suites/dash/../../../../etc/passwd",
    "/_dash-component-suites/%2e%2e/%2e%2e/x.js",
    "/stimulus/../../etc/passwd.png",
    "/stimulus/mini/..%2F..%2Fetc%2Fpasswd.png",
    "/export/",
    "/export/../app.py",
    "//etc/passwd",
    "/%2e%2e/%2e%2e/etc/passwd",
    "/health/../app.py",
)
#: export formats, some of them hostile
FORMATS = ["csv", "parquet", "png", "svg", "pdf", "txt", "csv%00.png", "", "..", "duckdb"]


def fuzz_cases(
    site: DashSite, export_names: list[str], rng: random.Random, n: int, secret_path: str | None = None
) -> list[tuple[str, str, dict | None]]:
    """`n` requests (method, path, JSON body or None): pages, callbacks, exports, images and static routes."""
    values = fuzz_values(secret_path)
    names = [*export_names, "..%2F..%2Fetc%2Fpasswd", "../../etc/passwd", "%2e%2e", "x" * 300, "sites-scatter%00"]
    static = list(STATIC_PATHS)
    if secret_path:
        static += [f"/assets/{secret_path}", f"/export/{secret_path}.csv", f"/stimulus/mini/{secret_path}.png"]
    cases: list[tuple[str, str, dict | None]] = [("GET", s, None) for s in static]
    while len(cases) < n:
        kind = rng.random()
        query = {
            rng.choice([*PAGE_PARAMS, "zzz", "__class__", "layout"]): rng.choice(values)
            for _ in range(rng.randint(1, 4))
        }
        if kind < 0.35:  # a page opened from a crafted link: the router calls layout(**query)
            cases.append(_router_case(site, rng, values, query))
        elif kind < 0.6:  # a callback with crafted input values (what a hand-made POST can send)
            cases.append(_callback_case(site, rng, values))
        elif kind < 0.9:  # an export with crafted parameters, name or format
            name = rng.choice(export_names) if rng.random() < 0.8 else rng.choice(names)
            fmt = rng.choice(["csv", "parquet", "csv", "parquet", "svg"] if rng.random() < 0.85 else FORMATS)
            cases.append(("GET", f"/export/{quote(name, safe='%/')}.{quote(fmt, safe='%')}?{urlencode(query)}", None))
        else:  # a stimulus image with crafted ids
            stimulus = f"{quote(rng.choice(values), safe='')}/{quote(rng.choice(values), safe='')}"
            cases.append(("GET", f"/stimulus/{stimulus}.png", None))
    return cases[:n]


def _router_case(site: DashSite, rng: random.Random, values: list[str], query: dict) -> tuple[str, str, dict]:
    path = rng.choice([*site.pages, "/../../etc/passwd", "/sites/../dataset", "/" + rng.choice(values)])
    body = {
        "output": ROUTER_OUTPUT,
        "outputs": parse_outputs(ROUTER_OUTPUT),
        "inputs": [
            {"id": "_pages_location", "property": "pathname", "value": path},
            {"id": "_pages_location", "property": "search", "value": "?" + urlencode(query)},
        ],
        "state": [],
        "changedPropIds": ["_pages_location.pathname"],
    }
    return "POST", "/_dash-update-component", body


def _callback_case(site: DashSite, rng: random.Random, values: list[str]) -> tuple[str, str, dict]:
    cb = rng.choice(site.callbacks)

    def entry(d: dict) -> dict | list:
        if d["id"].startswith("{") and "[" in d["id"]:
            return []
        cid = json.loads(d["id"]) if d["id"].startswith("{") else d["id"]
        return {"id": cid, "property": d["property"], "value": rng.choice([*values, None, 3, [1, 2]])}

    outputs = parse_outputs(cb.output)
    body = {
        "output": cb.output,
        "outputs": outputs if cb.output.startswith("..") else outputs[0],
        "inputs": [entry(d) for d in cb.inputs],
        "state": [entry(d) for d in cb.state],
        "changedPropIds": [f"{d['id']}.{d['property']}" for d in cb.inputs[:1]],
    }
    return "POST", "/_dash-update-component", body


def run_fuzz(
    transport: Transport, cases: list[tuple[str, str, dict | None]], forbidden: Iterable[bytes] = ()
) -> list[tuple[str, int, str]]:
    """Send every case; return the failures: (request, status, why) for 5xx or forbidden content in a body."""
    failures = []
    forbidden = [f for f in forbidden if f]
    for method, path, body in cases:
        try:
            status, content = transport.get(path) if method == "GET" else transport.post_json(path, body or {})
        except Exception as exc:  # the server dropped the connection: as bad as a 500
            failures.append((f"{method} {path}", 0, f"{type(exc).__name__}: {exc}"))
            continue
        label = f"{method} {path}" + (f" {json.dumps(body)[:300]}" if body else "")
        if status >= 500:
            failures.append((label, status, content[:300].decode("utf-8", "replace")))
        leaked = [f for f in forbidden if f in content]
        if leaked:
            failures.append((label, status, f"response contains forbidden content {leaked[0][:40]!r}"))
    return failures


def export_names_from(site: DashSite, transport: Transport) -> list[str]:
    """Registered export names, read from the export links of every page."""
    names: set[str] = set()
    for page in site.pages:
        status, body = transport.post_json(
            "/_dash-update-component",
            {
                "output": ROUTER_OUTPUT,
                "outputs": parse_outputs(ROUTER_OUTPUT),
                "inputs": [
                    {"id": "_pages_location", "property": "pathname", "value": page},
                    {"id": "_pages_location", "property": "search", "value": ""},
                ],
                "state": [],
                "changedPropIds": ["_pages_location.pathname"],
            },
        )
        if status == 200:
            names |= {h[len("/export/") :].split("?")[0].rsplit(".", 1)[0] for h in hrefs(json.loads(body), "/export/")}
    return sorted(n for n in names if n)
