"""The Kubernetes backend: KubeSpawner with the jupyter-tk form, and a watch-based inventory.

Only this package imports ``kubespawner`` and ``kubernetes_asyncio``; the neutral core in
``jupyter_tk.hub`` and the local backend never do.
"""
