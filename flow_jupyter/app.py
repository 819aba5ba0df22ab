"""Single-user host: the Jupyter server extension that mounts Flow's API at /flow/api/."""
from __future__ import annotations

from jupyter_server.extension.application import ExtensionApp

from ._version import __version__
from .api import default_handlers
from .config import FlowSettings
from .host import FlowHost


class FlowApp(ExtensionApp):
    name = "flow_jupyter"
    description = "Flow: Nextflow pipelines on Slurm from Jupyter"
    version = __version__
    load_other_extensions = True
    classes = [FlowSettings]

    def initialize_settings(self) -> None:
        settings = FlowSettings(parent=self)
        self.flow = FlowHost(settings)
        self.settings["flow"] = self.flow
        self.flow.start_background_work()
        self.log.info("Flow %s: root %s, executor %s", __version__, settings.root_dir, settings.executor)

    async def stop_extension(self) -> None:
        self.flow.close()

    def initialize_handlers(self) -> None:
        self.handlers.extend(default_handlers)


main = launch_instance = FlowApp.launch_instance
