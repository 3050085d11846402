"""The local backend: servers as processes on this machine (the embedded default).

CPU, memory and GPUs are read from this machine (psutil, cgroup v2, NVML) and handed out by an
allocation ledger. Nothing here imports ``kubespawner`` or ``kubernetes_asyncio``.
"""
