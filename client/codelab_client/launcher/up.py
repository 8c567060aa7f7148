"""`codelab up`: check the ports, start the services, report, restart one that dies, and stop them all on Ctrl-C,
SIGTERM or SIGHUP; a launcher killed outright takes its services with it (see `Supervisor`)."""

from __future__ import annotations

import signal
from collections.abc import Callable

from codelab_client.launcher.keys import configured, keys_path, resolve_keys
from codelab_client.launcher.plan import UpOptions, plan_services
from codelab_client.launcher.supervisor import MAX_RESTARTS, RESTART_WINDOW_S, StartupError, Supervisor

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
"""Each stops every service first: Ctrl-C, a service manager, the terminal closing."""
START_TIMEOUT_S = 600.0
"""The first start of the local model joins and hashes its weights, which takes minutes on a slow disk."""


def run_up(options: UpOptions, *, say: Callable[[str], None], warn: Callable[[str], None], start_timeout: float) -> int:
    """Exit status: 0 after a requested stop, 1 when a service failed to start or died."""
    keys = resolve_keys(options.data_dir)
    specs = plan_services(options, keys.values)
    log_dir = options.data_dir / "logs"
    supervisor = Supervisor(specs, log_dir, report=say, host=options.host)
    previous = {sig: signal.signal(sig, supervisor.request_stop) for sig in STOP_SIGNALS}
    try:
        supervisor.check_ports()
        say(f"starting {', '.join(spec.name for spec in specs)}; logs in {log_dir.resolve()}/<service>.log")
        if keys.generated:
            say(f"new internal keys ({', '.join(keys.generated)}) kept in {keys_path(options.data_dir).resolve()}")
        say('the internal keys, for curl: eval "$(codelab env)"')
        if not options.start_model and options.models_file is None:
            warn(
                f"--no-model: llm-proxy expects a model server at http://{options.host}:{options.ports.model}/v1 "
                "(or pass --models-file)"
            )
        supervisor.start_all(start_timeout)
        gateway = options.ports.gateway
        say(f"gateway listening on ws://{options.host}:{gateway} (IDE: ws://{options.host}:{gateway}/api/v1/ws/<id>)")
        say(f"chat with: codelab chat --workspace . --url ws://{options.host}:{gateway}")
        if (auth := configured("GATEWAY__CLIENT_AUTH") or "none") != "none":
            say(
                f"clients authenticate (GATEWAY__CLIENT_AUTH={auth}): codelab chat run here sends its token; "
                'for other clients eval "$(codelab env)" exports it as CODELAB_TOKEN (see docs/security.md)'
            )
        say("press Ctrl-C to stop everything")
        failing = supervisor.watch()
        if failing is not None:
            warn(
                f"{failing.spec.name} exited {MAX_RESTARTS + 1} times within {RESTART_WINDOW_S:.0f} s "
                f"(last status {failing.process.returncode}); stopping everything. See {failing.log_path}"
            )
            return 1
        return 0
    except StartupError as exc:
        warn(str(exc))
        return 1
    finally:
        if supervisor.children:
            say("stopping services...")
            supervisor.stop_all()
            say("all services stopped")
        for sig, handler in previous.items():
            signal.signal(sig, handler)
