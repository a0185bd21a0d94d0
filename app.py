"""Unitscope's web dashboard: `python app.py` locally, `gunicorn app:server` on a server.

Only the shell lives here; every page (layout + callbacks) is a module in pages/.
"""

from __future__ import annotations

import logging

import dash

from backend.auth import install_auth
from backend.cache import init_cache
from backend.config import get_settings
from backend.http import register_routes
from components.exports import register_export_routes
from components.shell import callback_error, create_shell, register_error_handlers

settings = get_settings()
logging.basicConfig(level=getattr(logging, settings.log_level, logging.INFO),
                    format="%(asctime)s %(levelname)s %(name)s: %(message)s")

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
register_routes(server)
register_export_routes(server)
register_error_handlers(server)
install_auth(server, settings)  # last: it puts its check in front of every other hook
app.layout = create_shell(dash.page_registry)

if __name__ == "__main__":
    app.run(host=settings.host, port=settings.port, debug=settings.debug)
