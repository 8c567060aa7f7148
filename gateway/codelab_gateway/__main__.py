"""`python -m codelab_gateway`: serve the gateway with the settings from the environment."""

from __future__ import annotations

from codelab_common.service import load_settings, run_service
from codelab_gateway.core.config import Settings
from codelab_gateway.main import SERVICE, create_app, server_options


def main() -> None:
    settings = load_settings(Settings)
    run_service(SERVICE, create_app(settings), settings, **server_options(settings))


if __name__ == "__main__":
    main()
