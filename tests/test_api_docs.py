"""The API documents under docs/api/ match the code, and every reference inside them resolves."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
API_DOCS = ROOT / "docs" / "api"
COMMAND = ".venv/bin/python scripts/gen_api_docs.py"


def test_documents_match_the_code() -> None:
    check = subprocess.run(
        [sys.executable, "scripts/gen_api_docs.py", "--check"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert check.returncode == 0, check.stderr


def test_every_reference_resolves() -> None:
    documents = sorted(API_DOCS.glob("*.json"))
    assert documents, f"no documents under {API_DOCS}; generate them with: {COMMAND}"
    for path in documents:
        document = json.loads(path.read_text(encoding="utf-8"))
        for ref in _refs(document):
            assert ref.startswith("#/"), f"{path.name}: {ref} points outside the document"
            _resolve(document, ref, path.name)


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def _resolve(document: Any, ref: str, name: str) -> None:
    node = document
    for part in ref.removeprefix("#/").split("/"):
        key = part.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict) and key in node, f"{name}: {ref} does not resolve"
        node = node[key]
