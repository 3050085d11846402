"""Group policy: who may start what, read from a policy file or from traitlets config.

The policy document (YAML or JSON, see ``share/policy.example.yaml``)::

    presets:                       # optional; quick choices shown on the form
      - {slug: cpu-basic, display_name: CPU basic, cpu: 2, memory: 4Gi}
      - {slug: gpu-1, display_name: 1 GPU, cpu: 8, memory: 32Gi,
         gpu: {resource: nvidia.com/gpu, count: 1}}
    rules:                         # the first rule whose groups meet the user's groups wins
      - groups: [gpu-lab]
        max: {cpu: 16, memory: 128Gi, gpus: 4}
        images: ["*"]
        custom_images: {allowed: true, registries: [nvcr.io, quay.io]}
        nodes: ["*"]
        presets: [cpu-basic, gpu-1]
      - groups: ["*"]
        max: {cpu: 2, memory: 4Gi, gpus: 0}

Parsing lives in :mod:`jupyter_tk.hub.policy_document`; this module holds the
:class:`Policy` configurable that reads the file, re-reads it when it changes and keeps the last
good version when a new one is broken.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from traitlets import Dict, List, Unicode, default
from traitlets.config import LoggingConfigurable

from jupyter_tk.hub.image_reference import ImageReference, parse_image_reference
from jupyter_tk.hub.policy_document import (
    CUSTOM_PROFILE,
    CustomImages,
    PolicyDocument,
    PolicyError,
    PolicyRule,
    Preset,
    ResourceCaps,
    load_policy_file,
    parse_policy,
)

__all__ = [
    "CUSTOM_PROFILE",
    "CustomImages",
    "ImageReference",
    "Policy",
    "PolicyDocument",
    "PolicyError",
    "PolicyRule",
    "Preset",
    "ResourceCaps",
    "load_policy_file",
    "parse_image_reference",
    "parse_policy",
]

_EMPTY = PolicyDocument(rules=(), presets=(), source="")


class Policy(LoggingConfigurable):
    """The group policy of this hub: :meth:`rule_for` answers "what may these groups start?".

    With ``policy_file`` set, the file is the policy (its ``presets`` key, when present, replaces
    the ``presets`` trait). Without it, ``rules`` and ``presets`` from config are the policy.
    A missing or broken file never raises out of :meth:`rule_for`: the last good policy stays in
    force (deny-all when there never was one) and :attr:`error` says why, for the form to show.
    """

    policy_file = Unicode(
        config=True,
        help="""Path of the policy file (YAML, or JSON when the name ends in .json).

        Defaults to $JUPYTER_TK_POLICY. Re-read when its modification time, size or inode change,
        so a mounted ConfigMap update applies without a restart. When empty, `rules` and `presets`
        are used. Example: /etc/jupyter-tk/policy.yaml
        """,
    )

    @default("policy_file")
    def _default_policy_file(self) -> str:
        return os.environ.get("JUPYTER_TK_POLICY", "")

    rules = List(
        Dict(),
        config=True,
        help="""Policy rules, used when no `policy_file` is set; same shape as the file's `rules`.

        Each rule: `groups` (list; "*" = everyone), `max` ({cpu: cores, memory: quantity such as
        "16Gi", gpus: count of any GPU resource incl. MIG slices}), optional `images` (catalog
        name globs, default ["*"]), `custom_images` ({allowed: bool, registries: [hosts]}, default
        not allowed), `nodes` (node name globs, default ["*"]), `presets` (slugs, default all).
        Example: [{"groups": ["*"], "max": {"cpu": 2, "memory": "4Gi", "gpus": 0}}]
        """,
    )

    presets = List(
        Dict(),
        config=True,
        help="""Presets offered on the form: quick choices of CPU (cores), memory and GPUs.

        Used unless the policy file has its own `presets` key. Each preset: `slug` (lowercase,
        not "custom"), `display_name`, `description`, `cpu`, `memory`, optional `gpu`
        ({resource, count}). A rule only offers presets within its caps.
        Example: [{"slug": "gpu-1", "display_name": "1 GPU", "cpu": 8, "memory": "32Gi",
        "gpu": {"resource": "nvidia.com/gpu", "count": 1}}]
        """,
    )

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._document: PolicyDocument = _EMPTY
        self._error: str | None = None
        # What was last read: the file's (path, mtime_ns, size, inode), or the config's identity.
        self._signature: object = None

    # -- public API ------------------------------------------------------------------------------

    def rule_for(self, groups: Iterable[str]) -> PolicyRule | None:
        """The first rule whose groups meet ``groups`` ("*" matches everyone), or None.

        None means the user may not start a server (say so clearly). ``groups`` are group
        names; JupyterHub ``Group`` objects (anything with a ``name``) are accepted too.
        Re-reads the policy file when it changed (one ``stat`` per call).
        """
        if isinstance(groups, str):
            groups = [groups]
        user_groups = {getattr(group, "name", group) for group in groups}
        for rule in self.document().rules:
            if rule.matches(user_groups):
                return rule
        return None

    def document(self) -> PolicyDocument:
        """The policy in force now (the last good one when the current file is broken)."""
        self._refresh()
        return self._document

    @property
    def error(self) -> str | None:
        """Why the policy in force is not the configured one (missing/broken file), else None."""
        self._refresh()
        return self._error

    # -- loading ---------------------------------------------------------------------------------

    def _refresh(self) -> None:
        if self.policy_file:
            self._refresh_from_file(self.policy_file)
        else:
            self._refresh_from_config()

    def _refresh_from_file(self, path: str) -> None:
        try:
            stat = os.stat(path)
        except OSError as e:
            signature: object = (path, "missing", type(e).__name__)
            if signature != self._signature:
                self._signature = signature
                self._set_error(f"policy file {path} cannot be read: {e.strerror or e}")
            return
        signature = (path, stat.st_mtime_ns, stat.st_size, stat.st_ino)
        if signature == self._signature:
            return
        self._signature = signature
        try:
            document = load_policy_file(path, default_presets=self.presets)
        except PolicyError as e:
            self._set_error(str(e))
            return
        if self.rules:
            self.log.warning("c.Policy.rules is ignored: the policy file %s is used instead", path)
        self._set_document(document)

    def _refresh_from_config(self) -> None:
        # Config does not change at run time, but tests and embedders may assign new lists.
        signature = (id(self.rules), id(self.presets), len(self.rules), len(self.presets))
        if signature == self._signature:
            return
        self._signature = signature
        if not self.rules:
            self._document = _EMPTY
            self._set_error(
                "no policy is configured: set $JUPYTER_TK_POLICY (or c.Policy.policy_file) "
                "or c.Policy.rules"
            )
            return
        try:
            document = parse_policy(
                {"rules": self.rules, "presets": self.presets}, source="c.Policy"
            )
        except PolicyError as e:
            self._document = _EMPTY
            self._set_error(str(e))
            return
        self._set_document(document)

    def _set_document(self, document: PolicyDocument) -> None:
        self._document = document
        self._error = None
        self.log.info(
            "Policy loaded from %s: %d rule(s), %d preset(s)",
            document.source,
            len(document.rules),
            len(document.presets),
        )

    def _set_error(self, message: str) -> None:
        # Logged once per change of the file, not per call.
        self._error = message
        if self._document is _EMPTY:
            self.log.error("%s; nobody may start a server until it is fixed", message)
        else:
            self.log.error(
                "%s; keeping the last good policy from %s", message, self._document.source
            )
