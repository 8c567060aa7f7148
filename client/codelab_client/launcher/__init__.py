"""`codelab up`: the whole system on this machine as child processes, wired with fresh internal keys."""

from codelab_client.launcher.plan import LOCAL_MODELS, Ports, ServiceSpec, UpOptions, plan_services
from codelab_client.launcher.supervisor import StartupError, Supervisor

__all__ = ["LOCAL_MODELS", "Ports", "ServiceSpec", "StartupError", "Supervisor", "UpOptions", "plan_services"]
