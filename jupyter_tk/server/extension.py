"""The jupyter_server extension: creates the shared GPU sampler, examples sync and activity
reporter."""

from jupyter_server.extension.application import ExtensionApp

from jupyter_tk.server.activity import ActivityReporter
from jupyter_tk.server.examples.sync import ExamplesSync
from jupyter_tk.server.gpu.sampler import GpuSampler
from jupyter_tk.server.handlers import setup_route_handlers


class JupyterTkExtension(ExtensionApp):
    """Serves GPU stats and examples copying under ``<base_url>/jupyter-tk/api``."""

    name = "jupyter_tk"

    def initialize_settings(self):
        # One sampler and one sync per server process, shared by every request.
        self.gpu_sampler = GpuSampler(parent=self, log=self.log)
        self.examples_sync = ExamplesSync(parent=self, log=self.log)
        self.activity = ActivityReporter(parent=self, log=self.log, sampler=self.gpu_sampler)
        self.settings.update(
            jupyter_tk_gpu=self.gpu_sampler,
            jupyter_tk_examples=self.examples_sync,
            jupyter_tk_activity=self.activity,
        )

    def initialize_handlers(self):
        setup_route_handlers(self.serverapp.web_app)

    async def _start_jupyter_server_extension(self, serverapp):
        await super()._start_jupyter_server_extension(serverapp)
        self.gpu_sampler.attach_kernel_manager(serverapp.kernel_manager)
        self.examples_sync.start_background_sync()
        self.activity.start(serverapp.kernel_manager)

    async def stop_extension(self):
        await self.activity.stop()
        self.examples_sync.close()
        await self.gpu_sampler.close()
