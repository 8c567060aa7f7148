"""`python -m codelab_agent_runtime`: serve agent-runtime with the settings from the environment."""

from __future__ import annotations

from codelab_agent_runtime.core.config import Settings
from codelab_agent_runtime.main import SERVICE, create_app
from codelab_common.service import load_settings, run_service


def main() -> None:
    settings = load_settings(Settings)
    run_service(SERVICE, create_app(settings), settings)


if __name__ == "__main__":
    main()
