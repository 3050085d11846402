"""The one registry of what a hub process shares: one instance per class per process.

The spawn form, validation and ``/hub/api/tk/resources`` must see the same inventory (one
watch of the cluster, one ledger of this machine's GPUs), and the policy and catalog are read
once per hub, not once per spawner. Everything shared that way is created here, with the hub's
configuration, the first time anyone asks for it.
"""

from __future__ import annotations

from typing import Any, TypeVar

__all__ = ["shared_instance"]

T = TypeVar("T")

_instances: dict[type, Any] = {}


def shared_instance(cls: type[T], *, config: Any = None, log: Any = None) -> T:
    """The hub process's instance of `cls`, created as ``cls(config=..., log=...)`` on first
    call; later calls return it whatever they pass."""
    instance = _instances.get(cls)
    if instance is None:
        kwargs: dict[str, Any] = {}
        if config is not None:
            kwargs["config"] = config
        if log is not None:
            kwargs["log"] = log
        instance = _instances[cls] = cls(**kwargs)
    return instance
