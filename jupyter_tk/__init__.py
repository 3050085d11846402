"""jupyter-tk: GPU-flexible JupyterHub and JupyterLab."""

from jupyter_tk._version import __version__


def _jupyter_labextension_paths():
    return [{"src": "labextension", "dest": "jupyter-tk"}]


def _jupyter_server_extension_points():
    from jupyter_tk.server.extension import JupyterTkExtension

    return [{"module": "jupyter_tk.server.extension", "app": JupyterTkExtension}]


__all__ = ["__version__"]
