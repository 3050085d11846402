"""Sphinx configuration of the jupyter-tk documentation (MyST Markdown, built with -W in CI)."""

from jupyter_tk import __version__

project = "jupyter-tk"
author = "jupyter-tk contributors"
copyright = "2026, jupyter-tk contributors"
release = __version__
version = __version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "autodoc_traits",
]
source_suffix = {".md": "markdown"}
myst_enable_extensions = ["colon_fence", "deflist", "fieldlist"]
myst_heading_anchors = 3
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]

# Only what the docs import: the Kubernetes backend needs the hub extra, which the docs build has.
autodoc_typehints = "none"
autodoc_member_order = "bysource"

html_theme = "pydata_sphinx_theme"
html_title = "jupyter-tk"
html_static_path = ["_static"]
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
}
