"""Unitscope's web dashboard: `python app.py` locally, `gunicorn app:server` on a server.

Only the shell lives here; every page (layout + callbacks) is a module or package in pages/, and every
plain HTTP route (stimulus images, /health, exports, access control) is in routes.py.
"""

from __future__ import annotations

import logging

import dash

from backend.cache import init_cache
from backend.config import get_settings
from components.shell import callback_error, create_shell
from routes import register_routes

settings = get_settings()
logging.basicConfig(
    level=getattr(logging, settings.log_level, logging.INFO), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
)

app = dash.Dash(
    __name__,
    use_pages=True,
    title="Unitscope",
    suppress_callback_exceptions=True,
    external_stylesheets=[],  # Bootstrap is served from assets/vendor: no CDN, works offline
    on_error=callback_error,
)
server = app.server
init_cache(server, settings)
register_routes(server, settings)  # access control last: it puts its check in front of every other hook
app.layout = create_shell(dash.page_registry)

if __name__ == "__main__":
    app.run(host=settings.host, port=settings.port, debug=settings.debug)
