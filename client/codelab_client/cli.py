"""The `codelab` command: `up`, `env`, `chat` and `run`. Thin: each command hands over to its module."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.text import Text

from codelab_client.launcher import LOCAL_MODELS, Ports, UpOptions, resolve_keys
from codelab_client.launcher.keys import stored_token
from codelab_client.launcher.plan import LOCAL_MODEL_PARALLEL
from codelab_client.launcher.up import START_TIMEOUT_S, run_up

app = typer.Typer(
    name="codelab",
    help="CodeLab AI terminal client: run the services, chat with the agent, run one request.",
    no_args_is_help=True,
    add_completion=False,
)

DEFAULT_URL = "ws://127.0.0.1:8000"
DEFAULT_PORTS = Ports()
UrlOption = Annotated[str, typer.Option("--url", help="The gateway's WebSocket base URL.")]
ModelOption = Annotated[
    str | None,
    typer.Option(
        "--model", help="Model for the turns (a name from llm-proxy's model list; default: the deployment's)."
    ),
]
TokenOption = Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar="CODELAB_TOKEN",
        help="Token for a gateway that authenticates clients (default: the one `codelab up` keeps in data/).",
    ),
]
SessionOption = Annotated[
    str | None, typer.Option("--session", help="Session id to use or resume (default: a new one).")
]


def _workspace(path: Path) -> Path:
    if not path.is_dir():
        raise typer.BadParameter(f"{path} is not a folder", param_hint="--workspace")
    return path


DEFAULT_DATA_DIR = Path("data")
DataDirOption = Annotated[
    Path, typer.Option(help="Folder for the internal keys, the SQLite database and the service logs.")
]

WorkspaceOption = Annotated[
    Path,
    typer.Option("--workspace", "-w", help="The project folder the agent's tools work in.", callback=_workspace),
]


@app.command()
def up(
    model: Annotated[str, typer.Option(help=f"Model to serve and use: {' | '.join(LOCAL_MODELS)}.")] = LOCAL_MODELS[0],
    no_model: Annotated[
        bool, typer.Option("--no-model", help="Do not start the local model server (use --models-file or your own).")
    ] = False,
    data_dir: DataDirOption = DEFAULT_DATA_DIR,
    models_file: Annotated[
        Path | None, typer.Option(help="llm-proxy models file (YAML) instead of the local model only.")
    ] = None,
    gateway_port: Annotated[int, typer.Option(help="Gateway port.")] = DEFAULT_PORTS.gateway,
    agent_runtime_port: Annotated[int, typer.Option(help="agent-runtime port.")] = DEFAULT_PORTS.agent_runtime,
    llm_proxy_port: Annotated[int, typer.Option(help="llm-proxy port.")] = DEFAULT_PORTS.llm_proxy,
    model_port: Annotated[int, typer.Option(help="Local model server port.")] = DEFAULT_PORTS.model,
    model_parallel: Annotated[
        int, typer.Option(min=1, help="Requests the local model serves at once, each with the full context.")
    ] = LOCAL_MODEL_PARALLEL,
    start_timeout: Annotated[float, typer.Option(help="Seconds each service may take to become healthy.")] = (
        START_TIMEOUT_S
    ),
) -> None:
    """Start the local model server, llm-proxy, agent-runtime and gateway; Ctrl-C stops them all."""
    if not no_model and model not in LOCAL_MODELS:
        raise typer.BadParameter(f"the local model server serves {', '.join(LOCAL_MODELS)}", param_hint="--model")
    if models_file is not None and not models_file.is_file():
        raise typer.BadParameter(f"{models_file} is not a file", param_hint="--models-file")
    console, errors = Console(), Console(stderr=True)
    options = UpOptions(
        model=model,
        start_model=not no_model,
        model_parallel=model_parallel,
        data_dir=data_dir,
        ports=Ports(gateway_port, agent_runtime_port, llm_proxy_port, model_port),
        models_file=models_file,
    )
    code = run_up(
        options,
        say=lambda text: console.print(Text.assemble(("codelab up: ", "bold cyan"), text), soft_wrap=True),
        warn=lambda text: errors.print(Text.assemble(("codelab up: ", "bold red"), text), soft_wrap=True),
        start_timeout=start_timeout,
    )
    raise typer.Exit(code)


@app.command()
def env(data_dir: DataDirOption = DEFAULT_DATA_DIR) -> None:
    """Print the internal keys as shell exports: eval "$(codelab env)" (generated and kept if there are none yet)."""
    typer.echo(resolve_keys(data_dir).exports(), nl=False)


@app.command()
def chat(
    workspace: WorkspaceOption,
    url: UrlOption = DEFAULT_URL,
    session: SessionOption = None,
    model: ModelOption = None,
    token: TokenOption = None,
) -> None:
    """Chat with the agent; its tools run in the workspace, and calls that change things ask first."""
    from codelab_client.chat import chat as run_chat

    token = token or stored_token(DEFAULT_DATA_DIR)
    try:
        code = asyncio.run(run_chat(workspace, url, session, model=model, token=token))
    except KeyboardInterrupt:
        code = 130
    raise typer.Exit(code)


@app.command()
def run(
    prompt: Annotated[str, typer.Argument(help="The request for the agent.")],
    workspace: WorkspaceOption,
    approve: Annotated[
        bool, typer.Option("--approve/--no-approve", help="Approve or reject every call that needs approval.")
    ] = False,
    url: UrlOption = DEFAULT_URL,
    json_lines: Annotated[bool, typer.Option("--json", help="Print every received frame as a JSON line.")] = False,
    session: SessionOption = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the whole answer.")] = 600.0,
    model: ModelOption = None,
    token: TokenOption = None,
) -> None:
    """Run one request without prompts and print the answer.

    Exit status: 0 completed, 1 the gateway sent an error frame, 3 connection failed, 4 timed out, 5 cancelled.
    """
    from codelab_client.oneshot import RunOptions, run_once

    token = token or stored_token(DEFAULT_DATA_DIR)
    options = RunOptions(prompt, workspace, url, approve, json_lines, session, timeout, model, token)
    try:
        code = int(asyncio.run(run_once(options)))
    except KeyboardInterrupt:
        code = 130
    raise typer.Exit(code)
