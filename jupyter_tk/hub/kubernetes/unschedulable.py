"""Telling a user, in plain words, why the cluster cannot place their server.

KubeSpawner would wait the whole ``start_timeout`` (5 minutes by default) for a pod that the
scheduler keeps refusing. :class:`UnschedulableWatch` notices the pod's ``PodScheduled=False``
condition (reason ``Unschedulable``) through KubeSpawner's pod reflector and gives up after a
bounded time, with the scheduler's own explanation (its ``FailedScheduling`` event) rewritten
for people.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping

from tornado.web import HTTPError

__all__ = ["ServerUnschedulable", "UnschedulableWatch", "plain_scheduler_message"]

# Scheduler phrases (kube-scheduler's plugins) -> what they mean for someone starting a server.
_PHRASES = (
    (re.compile(r"Insufficient ([\w./-]+)"), r"not enough free \1"),
    (
        re.compile(r"node\(s\) didn't match Pod's node affinity/selector"),
        "not the node you picked",
    ),
    (re.compile(r"node\(s\) had untolerated taint \{([^}]*)\}"), r"reserved (taint \1)"),
    (re.compile(r"node\(s\) were unschedulable"), "cordoned"),
    (re.compile(r"node\(s\) had taint \{node.kubernetes.io/not-ready: \}"), "not ready"),
)
_NO_PREEMPTION = re.compile(r"\s*preemption: .*$", re.DOTALL)


class ServerUnschedulable(HTTPError):
    """The pod stayed unschedulable too long (HTTP 409, a refusal rather than a hub error)."""

    def __init__(self, message: str) -> None:
        super().__init__(409, "%s", message)
        self.message = message
        self.jupyterhub_message = message

    def __str__(self) -> str:
        return self.message


def plain_scheduler_message(message: str) -> str:
    """``0/3 nodes are available: 3 Insufficient nvidia.com/gpu.`` -> plainer words.

    Unknown phrases are kept as the scheduler wrote them.
    """
    text = _NO_PREEMPTION.sub("", message.strip())
    for pattern, replacement in _PHRASES:
        text = pattern.sub(replacement, text)
    return text.rstrip(".") + "."


def unschedulable_condition(pod: Mapping | None) -> Mapping | None:
    """The pod's ``PodScheduled`` condition when it says Unschedulable, else None."""
    if not pod:
        return None
    for condition in (pod.get("status") or {}).get("conditions") or ():
        if (
            condition.get("type") == "PodScheduled"
            and condition.get("status") == "False"
            and condition.get("reason") == "Unschedulable"
        ):
            return condition
    return None


class UnschedulableWatch:
    """Tracks how long one pod has been unschedulable; checked about once a second."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._since: float | None = None

    def check(self, pod: Mapping | None, events: Iterable[Mapping]) -> str | None:
        """None while there is hope; the message to fail with once ``timeout`` has passed."""
        condition = unschedulable_condition(pod)
        if condition is None:
            self._since = None
            return None
        now = time.monotonic()
        if self._since is None:
            self._since = now
        if now - self._since < self.timeout:
            return None
        reason = ""
        for event in events:
            if event.get("reason") == "FailedScheduling" and event.get("message"):
                reason = event["message"]  # the latest one wins
        reason = reason or condition.get("message") or "no node can take it"
        return (
            f"No node could take your server within {self.timeout:g} seconds: "
            f"{plain_scheduler_message(reason)} Choose less (or another node) and start again."
        )
