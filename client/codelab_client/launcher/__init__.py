"""`codelab up`: the whole system on this machine as child processes, wired with internal keys."""

from codelab_client.launcher.keys import Keys, resolve_keys
from codelab_client.launcher.plan import LOCAL_MODELS, Ports, ServiceSpec, UpOptions, plan_services
from codelab_client.launcher.supervisor import StartupError, Supervisor

__all__ = [
    "LOCAL_MODELS",
    "Keys",
    "Ports",
    "ServiceSpec",
    "StartupError",
    "Supervisor",
    "UpOptions",
    "plan_services",
    "resolve_keys",
]
