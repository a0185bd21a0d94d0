"""The Overview's entry in Dash's page registry (Dash imports every pages/ file that registers a page)."""

from __future__ import annotations

import dash

from pages.overview.layout import layout

# registered under the package's name, so the registry's key and the URL are what they were as a module
dash.register_page("pages.overview", path="/", name="Overview", order=0, title="Unitscope", layout=layout)
