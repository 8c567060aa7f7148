"""`python -m codelab_llm_proxy`: serve the proxy with the settings from the environment."""

from __future__ import annotations

from codelab_common.service import load_settings, run_service
from codelab_llm_proxy.core.config import Settings
from codelab_llm_proxy.main import SERVICE_NAME, create_app


def main() -> None:
    settings = load_settings(Settings)
    run_service(SERVICE_NAME, create_app(settings), settings)


if __name__ == "__main__":
    main()
