"""``tk-local``: a process on this machine with the jupyter-tk form (see ``process.py``)."""

from __future__ import annotations

from traitlets import Type

from jupyter_tk.hub.inventory import Inventory
from jupyter_tk.hub.local.inventory import LocalInventory
from jupyter_tk.hub.local.process import LocalRequest, LocalResourceSpawner
from jupyter_tk.hub.spawner_mixin import TkSpawnerMixin
from jupyter_tk.hub.validation import ValidatedOptions

__all__ = ["TkLocalSpawner"]


class TkLocalSpawner(TkSpawnerMixin, LocalResourceSpawner):
    """A local process with the jupyter-tk form (entry point ``tk-local``)."""

    # A class-level default (not a @default method), so the wiring reads it without a spawner.
    inventory_class = Type(
        LocalInventory, klass=Inventory, config=True, help=TkSpawnerMixin.inventory_class.help
    )

    def apply_validated_options(self, options: ValidatedOptions) -> None:
        self.local_request = LocalRequest(
            cpu=options.cpu,
            memory=options.memory,
            gpu_resource=options.gpu_resource,
            gpu_count=options.gpu_count,
            image=options.image,
            image_name=options.image_name or options.image,
            profile=options.profile,
        )

    async def start(self):
        await self.load_user_options()
        return await super().start()
