"""`python -m codelab_agent_runtime`: serve agent-runtime with the settings from the environment."""

from __future__ import annotations

import uvicorn

from codelab_agent_runtime.core.config import Settings
from codelab_agent_runtime.main import SERVICE, create_app
from codelab_common.logs import configure_logging


def main() -> None:
    settings = Settings()  # type: ignore[call-arg]  # required values come from the environment
    configure_logging(SERVICE, settings.log_level, settings.log_json)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        log_config=None,
    )


if __name__ == "__main__":
    main()
