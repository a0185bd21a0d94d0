"""The Sites page's entry in Dash's page registry (Dash imports every pages/ file that registers a page)."""

from __future__ import annotations

import dash

from pages.sites.layout import layout

# registered under the package's name, so the registry's key and the URL are what they were as a module
dash.register_page("pages.sites", path="/sites", name="Sites", order=2, title="Unitscope · Sites", layout=layout)
