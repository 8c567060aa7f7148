"""How often the local model picks the right tool, through llm-proxy's prompting for bare-JSON models.

Starts `codelab-local-model` (or uses `--url` of a running OpenAI-compatible llama.cpp server), sends each
prompt below with the agent's system prompt and every tool, prepared as llm-proxy prepares it for the embedded
model (no grammar; `--grammar` adds llama.cpp's), and prints
what the model answered: a call (and whether it is the expected one) or text, with the time per answer.

    uv run python bench/tool_choice.py --model qwen2.5-coder-0.5b
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import urllib.request

from codelab_agent_runtime.turns.prompt import system_prompt
from codelab_common.protocol import TOOLS
from codelab_llm_proxy.services.tool_parsers import get_tool_parser

CASES: list[tuple[str, str | None]] = [
    ("Explain main.py", "read_file"),
    ("What does main.py do?", "read_file"),
    ("List the files in the project", "list_files"),
    ("Create hello.txt containing hi", "write_file"),
    ("Run the tests", "run_command"),
    ("Show the uncommitted changes", "git_diff"),
    ("What is a Python decorator?", None),
    ("hello", None),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="qwen2.5-coder-0.5b")
    parser.add_argument("--url", help="base URL of a running server (default: start one)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--grammar", action="store_true", help="constrain answers with the tool-call grammar")
    args = parser.parse_args()
    server = None
    url = args.url
    if url is None:
        command = [sys.executable, "-m", "codelab_local_model", "--model", args.model, "--port", "0"]
        server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        assert server.stdout is not None
        url = server.stdout.readline().split()[1]
    try:
        run(url.rstrip("/"), args.model, args.rounds, args.grammar)
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)


def run(url: str, model: str, rounds: int, grammar: bool) -> None:
    tool_parser = get_tool_parser("json")
    tools = [tool.openai_definition() for tool in TOOLS]
    system = system_prompt(tuple(tool.name for tool in TOOLS))
    right = total = 0
    print(f"model {model} at {url}, {rounds} round(s), temperature 0.2, grammar {'on' if grammar else 'off'}")
    for _ in range(rounds):
        for prompt, expected in CASES:
            messages = [{"role": "system", "content": system}, {"role": "user", "content": prompt}]
            body = {"messages": messages, "tools": tools, "max_tokens": 60, "temperature": 0.2}
            prepared = tool_parser.prepare_request(body, constrain=grammar)
            started = time.perf_counter()
            request = urllib.request.Request(
                f"{url}/v1/chat/completions", json.dumps(prepared).encode(), {"Content-Type": "application/json"}
            )
            with urllib.request.urlopen(request, timeout=300) as response:
                answer = json.load(response)
            seconds = time.perf_counter() - started
            text = answer["choices"][0]["message"]["content"] or ""
            found = tool_parser.extract(text, {tool.name: tool.parameters for tool in TOOLS})
            calls = found.calls if found else []
            got = calls[0].name if calls else None
            total += 1
            right += got == expected
            verdict = "ok " if got == expected else "MISS"
            shown = f"call {got}{calls[0].arguments}" if calls else "text " + text[:60].replace("\n", " ")
            print(f"{verdict} {seconds:5.1f} s  {prompt!r:36} -> {shown}")
    print(f"right tool (or text when none is needed): {right}/{total}")


if __name__ == "__main__":
    main()
