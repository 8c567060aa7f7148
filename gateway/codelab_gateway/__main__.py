"""`python -m codelab_gateway`: serve the gateway with uvicorn."""

from __future__ import annotations

import uvicorn

from codelab_common.logs import configure_logging
from codelab_gateway.core.config import Settings
from codelab_gateway.main import SERVICE, create_app


def main() -> None:
    settings = Settings()  # type: ignore[call-arg]
    configure_logging(SERVICE, settings.log_level, settings.log_json)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        ws="websockets-sansio",
        ws_max_size=max(16 * settings.max_frame_bytes, 16 << 20),
        log_config=None,
    )


if __name__ == "__main__":
    main()
