"""What the server tests check against, written out from ARCHITECTURE.md, not imported from the
code under test: the keys of ``GET jupyter-tk/api/gpus`` and an authorizer that refuses this
extension's ``auth_resource``."""

from jupyter_server.auth.authorizer import Authorizer

GPU_RESPONSE_KEYS = {"available", "reason", "driver_version", "cuda_driver_version", "timestamp"}
GPU_DEVICE_KEYS = {
    "index",
    "uuid",
    "name",
    "mig",
    "parent_uuid",
    "utilization_gpu",
    "utilization_memory",
    "memory_used",
    "memory_total",
    "temperature",
    "power_usage",
    "power_limit",
    "processes",
    "error",
}


class DenyJupyterTk(Authorizer):
    """Allows everything except this extension's resource (to see auth_resource enforced)."""

    def is_authorized(self, handler, user, action, resource):
        return resource != "jupyter-tk"
