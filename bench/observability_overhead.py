"""What tracing and multiprocess metrics cost llm-proxy: the streaming benchmark of `llm_proxy_bench.py` against
several llm-proxy processes side by side, one per way of running it.

- `tracing off`: as deployed by default (Prometheus metrics in memory, no OTLP endpoint);
- `tracing on`: `OTEL_EXPORTER_OTLP_ENDPOINT` pointing at `otlp_sink.py` on loopback (every request exported: a
  server span and an upstream span, batched by a background thread);
- `multiprocess metrics`: `PROMETHEUS_MULTIPROC_DIR` set (every metric update writes to a memory-mapped file);
- `both`;
- with `--baseline-ref REF`, `before` too: llm-proxy and codelab-common as of that git commit (from `git archive`,
  first on PYTHONPATH), to show what the code costs with tracing off.

`--ref REF` runs the other variants from a commit the same way (default: the working tree).

All run at once (idle while another is measured), against one `fast_upstream.py`. For each concurrency level the
variants take turns, `--rounds` times in a rotating order, so a slow moment of the shared machine does not land on
one variant; each figure is the median of the rounds.

    uv run python bench/observability_overhead.py --ref HEAD --baseline-ref HEAD~2
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from statistics import median

import uvloop
from llm_proxy_bench import (
    BENCH,
    ROOT,
    Result,
    Server,
    _spawn,
    _wait_ready,
    free_port,
    measure,
    peak_rss_mb,
    running,
    start_proxy,
    start_upstream,
)

LEVELS = (1, 10, 50)


def start_sink(workdir: Path) -> tuple[str, subprocess.Popen[bytes]]:
    port = free_port()
    process = _spawn([sys.executable, str(BENCH / "otlp_sink.py"), str(port)], {}, workdir / "otlp-sink.log")
    _wait_ready(f"http://127.0.0.1:{port}/", process, 10, {})
    return f"http://127.0.0.1:{port}", process


def checkout(ref: str, target: Path) -> str:
    """The PYTHONPATH that runs llm-proxy and codelab-common as of `ref`."""
    archive = subprocess.run(
        ["git", "archive", ref, "libs/codelab-common", "llm-proxy"], cwd=ROOT, check=True, capture_output=True
    ).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(target, filter="data")
    return f"{target / 'libs' / 'codelab-common'}{os.pathsep}{target / 'llm-proxy'}"


@dataclass
class Summary:
    """Medians over the rounds of one variant at one level."""

    rps: float
    ttft_p50_ms: float
    ttft_p99_ms: float
    errors: int

    @classmethod
    def of(cls, rounds: list[Result]) -> Summary:
        return cls(
            rps=median(r.rps for r in rounds),
            ttft_p50_ms=median(r.ttft_ms(0.5) for r in rounds),
            ttft_p99_ms=median(r.ttft_ms(0.99) for r in rounds),
            errors=sum(r.errors + r.short for r in rounds),
        )


def table(by_level: dict[int, dict[str, Summary]], reference: str, peaks: dict[str, float]) -> str:
    lines = [
        f"| variant | concurrency | requests/s | vs {reference} | TTFT p50 ms | TTFT p99 ms | peak RSS MB | errors |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for level, summaries in by_level.items():
        base = summaries[reference]
        for name, summary in summaries.items():
            change = f"{(summary.rps / base.rps - 1) * 100:+.1f} %" if name != reference and base.rps else "–"
            peak = f"{peaks[name]:.0f}" if name in peaks else "–"
            lines.append(
                f"| {name} | {level} | {summary.rps:,.0f} | {change} | {summary.ttft_p50_ms:.2f} | "
                f"{summary.ttft_p99_ms:.2f} | {peak} | {summary.errors} |"
            )
    return "\n".join(lines)


async def run(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="observability-bench-"))
    upstream, upstream_process = start_upstream(workdir)
    sink, sink_process = start_sink(workdir)
    processes = [upstream_process, sink_process]
    with running(processes):
        multiproc = workdir / "prometheus-multiproc"
        multiproc.mkdir()
        both = workdir / "prometheus-multiproc-both"
        both.mkdir()
        code = {"PYTHONPATH": checkout(args.ref, workdir / "ref")} if args.ref else {}
        variants: dict[str, dict[str, str]] = {
            "tracing off": code,
            "tracing on": {**code, "OTEL_EXPORTER_OTLP_ENDPOINT": sink},
            "multiprocess metrics": {**code, "PROMETHEUS_MULTIPROC_DIR": str(multiproc)},
            "both": {**code, "OTEL_EXPORTER_OTLP_ENDPOINT": sink, "PROMETHEUS_MULTIPROC_DIR": str(both)},
        }
        if args.baseline_ref:
            variants = {"before": {"PYTHONPATH": checkout(args.baseline_ref, workdir / "baseline")}, **variants}
        servers: list[Server] = []
        for index, (name, env) in enumerate(variants.items()):
            servers.append(start_proxy(upstream, workdir, f"proxy-{index}", env))
            servers[-1].name = name
            processes.append(servers[-1].process)
        print("ready: " + ", ".join(f"{s.name} {s.ready_s:.2f} s" for s in servers), flush=True)
        by_level: dict[int, dict[str, Summary]] = {}
        for level in LEVELS:
            rounds: dict[str, list[Result]] = {server.name: [] for server in servers}
            for round_index in range(args.rounds):
                order = servers[round_index % len(servers) :] + servers[: round_index % len(servers)]
                for server in order:
                    result = await measure(server.name, server.url, server.headers, level, args.duration)
                    rounds[server.name].append(result)
                    print(f"  {server.name} c={level}: {result.rps:,.0f} req/s", flush=True)
            by_level[level] = {name: Summary.of(results) for name, results in rounds.items()}
        peaks = {server.name: peak_rss_mb(server.process.pid) for server in servers}
    sunk = (workdir / "otlp-sink.log").read_text().strip()
    text = table(by_level, "tracing off", peaks)
    text += f"\n\n- {sunk}\n- command: `{args.command}`"
    print("\n" + text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per variant, level and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--ref", help="run llm-proxy as of this git commit (default: the working tree)")
    parser.add_argument("--baseline-ref", help="also run llm-proxy as of this git commit, as `before`")
    args = parser.parse_args()
    args.command = shlex.join(["uv", "run", "python", "bench/observability_overhead.py", *sys.argv[1:]])
    uvloop.run(run(args))


if __name__ == "__main__":
    main()
