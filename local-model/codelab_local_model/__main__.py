"""`codelab-local-model`: serve an embedded model on loopback with llama.cpp's OpenAI-compatible server.

Prints exactly one line `ready http://HOST:PORT model=NAME` on stdout once it serves (launchers wait for it),
then runs until SIGTERM or SIGINT. Errors go to stderr with exit status 2.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from types import FrameType

from codelab_local_model.gguf_metadata import read_chat_template
from codelab_local_model.server import DEFAULT_CACHE_RAM_MIB, DEFAULT_PARALLEL, ServerOptions, start_server
from codelab_local_model.specs import DEFAULT_MODEL, MODELS, ModelSpec
from codelab_local_model.weights import WeightsError, cache_dir, ensure_weights


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="codelab-local-model", description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(MODELS), default=DEFAULT_MODEL)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8003, help="0 picks a free port")
    parser.add_argument(
        "--ctx-size", type=int, default=None, help="context window of each slot, in tokens (default: the model's)"
    )
    parser.add_argument("--threads", type=int, default=min(4, os.cpu_count() or 1))
    parser.add_argument(
        "--parallel",
        type=int,
        default=DEFAULT_PARALLEL,
        help="request slots served at once (default %(default)s); each slot gets the full --ctx-size: llama.cpp "
        "allocates ctx-size x parallel tokens of KV cache and splits them evenly between the slots",
    )
    parser.add_argument(
        "--cache-ram",
        type=int,
        default=DEFAULT_CACHE_RAM_MIB,
        metavar="MIB",
        help="memory for the states of prompts moved out of a slot, kept to resume them (default %(default)s; 0: none)",
    )
    parser.add_argument("--prepare-only", action="store_true", help="join and verify the weights, then exit")
    return parser


def _log(message: str) -> None:
    print(f"codelab-local-model: {message}", file=sys.stderr, flush=True)


def _chat_template(spec: ModelSpec) -> str | None:
    """The template borrowed from another model's GGUF, for models whose own template is broken."""
    if spec.chat_template_from is None:
        return None
    donor = MODELS[spec.chat_template_from]
    return read_chat_template(ensure_weights(donor))


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    spec = MODELS[args.model]
    for name, value in (("--ctx-size", args.ctx_size), ("--threads", args.threads), ("--parallel", args.parallel)):
        if value is not None and value < 1:
            _parser().error(f"{name} must be at least 1")
    if args.cache_ram < 0:
        _parser().error("--cache-ram must be at least 0")
    started = time.perf_counter()
    try:
        model_path = ensure_weights(spec)
        template = _chat_template(spec)
    except WeightsError as exc:
        _log(str(exc))
        sys.exit(2)
    prepared = time.perf_counter()
    _log(f"weights ready at {model_path} ({prepared - started:.1f} s; cache {cache_dir()})")
    if args.prepare_only:
        return
    options = ServerOptions(
        model_path=model_path,
        alias=spec.name,
        host=args.host,
        port=args.port,
        ctx_size=args.ctx_size or spec.default_context,
        threads=args.threads,
        parallel=args.parallel,
        cache_ram_mib=args.cache_ram,
        chat_template=template,
    )
    stop = threading.Event()

    def _stop(signum: int, _: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        server, url = start_server(options)
    except Exception as exc:
        _log(f"cannot start the llama.cpp server for {spec.name} on {args.host}:{args.port}: {exc}")
        sys.exit(2)
    _log(
        f"model loaded in {time.perf_counter() - prepared:.1f} s, {options.parallel} slots of {options.ctx_size} "
        "tokens of context each"
    )
    print(f"ready {url} model={spec.name}", flush=True)
    while not stop.wait(0.5):
        pass
    _log("stopping")
    del server


if __name__ == "__main__":
    main()
