"""Single-user servers as local processes with their own GPUs, a CPU share and memory limit.

:class:`LocalResourceSpawner` is JupyterHub's `LocalProcessSpawner` plus what a shared GPU
workstation needs: before the process starts it reserves the server's share in the
:class:`~jupyter_tk.hub.local.inventory.LocalInventory` (specific GPUs, memory, and CPU: a
time-shared share by default, whole cores in exclusive mode), hands the GPUs over through
``CUDA_VISIBLE_DEVICES`` (UUIDs, so the server's GPU panel and its kernels see only those), pins
the process to its cores with ``sched_setaffinity`` when CPU is exclusive and puts it in its own
cgroup v2 group (``memory.max``, ``cpu.max``, ``cpu.weight``) where the machine allows it. The
reservation is given back when the process is gone, and kept in the spawner state so a restarted
hub takes it back.

By default every server runs as the hub's own Unix user (the usual case on one workstation, and
in containers where the hub is root); set ``run_as_system_user`` to start each one as the Unix
user of the same name, as the stock spawner does.
"""

from __future__ import annotations

import asyncio
import getpass
import os
import pwd
import re
import site
import sys
from dataclasses import dataclass
from pathlib import Path

from jupyterhub.spawner import LocalProcessSpawner
from traitlets import Bool, Dict, List, Unicode, default

from jupyter_tk.hub.inventory import get_inventory
from jupyter_tk.hub.local.inventory import AllocationError, LocalAllocation, LocalInventory
from jupyter_tk.hub.quantities import parse_quantity
from jupyter_tk.hub.validation import InvalidOptions

__all__ = ["LocalRequest", "LocalResourceSpawner", "SpawnRefused", "shipped_examples_dir"]

# Names that are safe as one path component: no separators, no leading dot.
_SAFE_PATH_COMPONENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.@-]{0,127}", re.ASCII)
_STATE_KEY = "tk_allocation"
_CGROUP_STATE_KEY = "tk_cgroup"
_SYNC_TIMEOUT_SECONDS = 30
# Cgroup removals started from the synchronous clear_state(); referenced until done.
_cleanup_tasks: set[asyncio.Future] = set()


@dataclass(frozen=True)
class LocalRequest:
    """One server's request: cores, memory bytes (0 = none), GPUs, and what to run."""

    cpu: float
    memory: int
    gpu_resource: str | None = None
    gpu_count: int = 0
    image: str = ""  # what JUPYTER_IMAGE says (locally: the environment's name)
    image_name: str = ""  # catalog name, the key of `image_commands`
    profile: str = ""


class SpawnRefused(InvalidOptions):
    """This machine cannot start the server as asked (HTTP 409); the hub shows the message.

    Shown like a refused form (a quick failure is answered on the spawn page itself) rather
    than a bare "Unhandled error".
    """

    def __init__(self, message: str, status_code: int = 409) -> None:
        super().__init__(message, status_code)


def shipped_examples_dir() -> str:
    """The examples folder shipped with jupyter-tk (clone or installed ``share``), or ""."""
    package_root = Path(__file__).resolve().parents[2]
    candidates = [
        package_root / "share" / "examples",  # a clone / editable install
        Path(sys.prefix) / "share" / "jupyter-tk" / "examples",  # pip install
        Path(site.getuserbase()) / "share" / "jupyter-tk" / "examples",  # pip install --user
    ]
    for candidate in candidates:
        if candidate.is_dir():
            return str(candidate)
    return ""


class LocalResourceSpawner(LocalProcessSpawner):
    """A local process with assigned GPUs, a CPU share (or pinned cores) and, where possible,
    a memory limit."""

    run_as_system_user = Bool(
        False,
        config=True,
        help="""Start each server as the Unix user named like the hub user (needs a root hub).

        False (the default) starts every server as the hub's own user, each in its own folder
        (`notebook_dir`), which is what one workstation or a container needs. Example: True
        """,
    )

    examples_source = Unicode(
        config=True,
        help="""Folder of examples offered in each server's Examples panel
        (becomes JUPYTER_TK_EXAMPLES_SOURCE). Defaults to the `share/examples` folder shipped
        with jupyter-tk. Example: "/srv/thinkube-ai-examples"
        """,
    )

    @default("examples_source")
    def _default_examples_source(self) -> str:
        return shipped_examples_dir()

    examples_subdir = Unicode(
        "examples",
        config=True,
        help="""Folder, inside the user's notebook folder, that receives copies of the examples
        (becomes JUPYTER_TK_EXAMPLES_DEST). Example: "examples"
        """,
    )

    image_commands = Dict(
        value_trait=List(Unicode()),
        config=True,
        help="""Command that starts the single-user server for a catalog image on this machine.

        Locally an "image" is not pulled: the catalog entry names an environment. Images not
        listed here run `Spawner.cmd` (this Python's jupyterhub-singleuser).
        Example: {"tk-jupyter-ml-gpu": ["/opt/envs/ml/bin/jupyterhub-singleuser"]}
        """,
    )

    @default("notebook_dir")
    def _default_notebook_dir(self) -> str:
        # One folder per hub user: they all share the hub's Unix account.
        return "~" if self.run_as_system_user else "~/jupyter-tk/{username}"

    @default("default_url")
    def _default_default_url(self) -> str:
        return "/lab"

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        #: Set by the form's validation before start; None reads `user_options` directly.
        self.local_request: LocalRequest | None = None
        self._allocation: LocalAllocation | None = None
        self._cgroup: Path | None = None
        self._base_cmd: list[str] | None = None
        self._request_env: dict[str, str] = {}

    # -- the shared inventory --------------------------------------------------------------------

    @property
    def local_inventory(self) -> LocalInventory:
        cls = getattr(self, "inventory_class", None) or LocalInventory
        if not (isinstance(cls, type) and issubclass(cls, LocalInventory)):
            raise TypeError(f"{type(self).__name__} needs a LocalInventory, not {cls!r}")
        return get_inventory(cls, config=self.config, log=self.log)

    @property
    def allocation_key(self) -> str:
        """How this server is named in the inventory: ``user`` or ``user/server-name``."""
        return f"{self.user.name}/{self.name}" if self.name else self.user.name

    @property
    def allocation(self) -> LocalAllocation | None:
        return self._allocation

    # -- what was asked for ----------------------------------------------------------------------

    def requested(self) -> LocalRequest:
        """What this start asks for: `local_request` when set (by the form's validation),
        else read from the contract-shaped `user_options`."""
        if self.local_request is not None:
            return self.local_request
        options = self.user_options or {}
        try:
            cpu = float(options.get("cpu") or 1)
            memory_option = options.get("memory")
            memory = int(parse_quantity(memory_option)) if memory_option else 0
            gpu = options.get("gpu") or {}
            resource = gpu.get("resource") if isinstance(gpu, dict) else None
            count = int(gpu.get("count") or 0) if resource else 0
        except (TypeError, ValueError) as e:
            raise SpawnRefused(f"Unreadable resource request: {e}", status_code=400) from None
        image = str(options.get("image") or "")
        return LocalRequest(
            cpu=cpu,
            memory=memory,
            gpu_resource=resource,
            gpu_count=count,
            image=image,
            image_name=image,
            profile=str(options.get("profile") or ""),
        )

    # -- process ---------------------------------------------------------------------------------

    def server_root(self) -> Path:
        """The absolute folder the server starts in (`notebook_dir` with ~ and {username})."""
        name = self.user.name
        if not _SAFE_PATH_COMPONENT.fullmatch(name):
            raise SpawnRefused(
                f"The user name {name!r} cannot be used as a folder name.", status_code=400
            )
        folder = self.format_string(self.notebook_dir or "~")
        if self.run_as_system_user and folder.startswith("~"):
            folder = pwd.getpwnam(name).pw_dir + folder[1:]
        return Path(os.path.expanduser(folder)).resolve()

    def user_env(self, env: dict) -> dict:
        if self.run_as_system_user:
            return super().user_env(env)
        # The hub's own account and HOME (as the hub sees it): the user's Python packages,
        # conda environments and settings keep working, and `~` means the same to both.
        account = pwd.getpwuid(os.getuid())
        env["USER"] = account.pw_name or getpass.getuser()
        env["HOME"] = os.path.expanduser("~")
        env["SHELL"] = os.environ.get("SHELL") or account.pw_shell or "/bin/sh"
        return env

    def get_env(self) -> dict:
        env = super().get_env()
        env.update(self._request_env)
        return env

    def get_args(self) -> list[str]:
        args = list(super().get_args())
        if os.geteuid() == 0 and not self.run_as_system_user:
            # The hub's user is root (containers, CI): jupyter_server refuses root without this.
            args.append("--ServerApp.allow_root=True")
        return args

    def make_preexec_fn(self, name: str):
        cores = tuple(self._allocation.cores) if self._allocation else ()
        group = self._cgroup
        join = self.local_inventory.cgroups.join_in_child
        switch_user = super().make_preexec_fn(name) if self.run_as_system_user else None
        root = str(self.server_root())

        def preexec() -> None:
            # Runs in the child between fork and exec: limits first (they need the hub's
            # privileges), then the user switch, so the server never runs unconfined.
            if cores:
                os.sched_setaffinity(0, cores)
            join(group)
            if switch_user is not None:
                switch_user()
            else:
                os.chdir(root)

        return preexec

    async def start(self):
        inventory = self.local_inventory
        await inventory.wait_synced(timeout=_SYNC_TIMEOUT_SECONDS)
        request = self.requested()
        try:
            allocation = inventory.allocate(
                self.allocation_key,
                cpu=request.cpu,
                memory=request.memory,
                gpu_resource=request.gpu_resource,
                gpu_count=request.gpu_count,
            )
        except AllocationError as e:
            raise SpawnRefused(f"Cannot start your server right now: {e}.") from None
        self._allocation = allocation
        try:
            root = self.server_root()
            if not self.run_as_system_user:
                root.mkdir(parents=True, exist_ok=True)
            self._cgroup = inventory.cgroups.create(
                self.allocation_key, allocation.memory, allocation.cpu
            )
            self._prepare(request, allocation, root)
            try:
                return await super().start()
            except FileNotFoundError as e:
                environment = request.image_name or "this environment"
                raise SpawnRefused(
                    f"The command that starts servers for {environment} does not exist on this "
                    f"machine: {e.filename}. Ask an administrator to check image_commands.",
                    status_code=500,
                ) from None
        except BaseException:
            await self._give_back()
            raise

    def _prepare(self, request: LocalRequest, allocation: LocalAllocation, root: Path) -> None:
        if self._base_cmd is None:
            self._base_cmd = list(self.cmd)
        self.cmd = self.image_commands.get(request.image_name) or self._base_cmd
        self.mem_limit = allocation.memory or None
        self.cpu_limit = allocation.cpu
        env = {
            # CUDA's own rule: an empty list means no GPU at all.
            "CUDA_VISIBLE_DEVICES": ",".join(allocation.gpu_uuids),
            "JUPYTERHUB_ROOT_DIR": str(root),
            "JUPYTER_TK_PROFILE": request.profile,
            "JUPYTER_TK_EXAMPLES_DEST": str(root / self.examples_subdir),
        }
        if request.image:
            env["JUPYTER_IMAGE"] = request.image
        if self.examples_source:
            env["JUPYTER_TK_EXAMPLES_SOURCE"] = self.examples_source
        self._request_env = env

    async def poll(self):
        status = await super().poll()
        if status is not None:
            await self._give_back()
        return status

    async def stop(self, now: bool = False) -> None:
        await super().stop(now=now)
        await self._give_back()

    async def _give_back(self) -> None:
        """Release the reservation and remove the cgroup (with any kernel left in it)."""
        if self._allocation is not None:
            self.local_inventory.release(self.allocation_key)
            self._allocation = None
        group, self._cgroup = self._cgroup, None
        if group is not None:
            await self.local_inventory.cgroups.remove(group)

    # -- state across hub restarts ---------------------------------------------------------------

    def get_state(self) -> dict:
        state = super().get_state()
        if self._allocation is not None:
            state[_STATE_KEY] = self._allocation.to_state()
        if self._cgroup is not None:
            state[_CGROUP_STATE_KEY] = str(self._cgroup)
        return state

    def load_state(self, state: dict) -> None:
        super().load_state(state)
        saved = state.get(_STATE_KEY)
        if saved and self.pid:
            try:
                self._allocation = self.local_inventory.restore(saved)
            except (KeyError, TypeError, ValueError) as e:
                self.log.warning(
                    "Ignoring unreadable saved reservation of %s: %s", self._log_name, e
                )
        if state.get(_CGROUP_STATE_KEY):
            self._cgroup = Path(state[_CGROUP_STATE_KEY])

    def clear_state(self) -> None:
        super().clear_state()
        if self._allocation is not None:
            # The process is gone: its GPUs are free from now on, even before the cgroup is removed.
            self.local_inventory.release(self.allocation_key)
            self._allocation = None
        if self._cgroup is not None:
            group, self._cgroup = self._cgroup, None
            task = asyncio.ensure_future(self.local_inventory.cgroups.remove(group))
            _cleanup_tasks.add(task)
            task.add_done_callback(_cleanup_tasks.discard)
