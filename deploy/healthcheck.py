"""Container health check: exit 0 when `/health` answers 200 (the database is published and readable).

Used by the Dockerfile's HEALTHCHECK (`python deploy/healthcheck.py`); stdlib only, so the image needs no
curl. `/health` is open even when access control is on (backend/auth.py says why).
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request


def main() -> int:
    port = os.environ.get("UNITSCOPE_PORT", "8050")
    url = f"http://127.0.0.1:{port}/health"
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            body = json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        print(f"unhealthy: {url} answered {exc.code}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as exc:
        print(f"unhealthy: {url}: {exc}", file=sys.stderr)
        return 1
    print(f"ok: build {body.get('build_id')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
