"""Rewrite `expected/` from the current code, for REVIEW (never run by the tests).

`uv run python llm-proxy/tests/golden/regenerate.py` — then read every diff: the golden output must be what the
spec says, not merely what the code does.
"""

from __future__ import annotations

import asyncio
import importlib.util
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


async def main() -> None:
    sys.path.insert(0, str(ROOT))
    spec = importlib.util.spec_from_file_location("golden_tests", ROOT / "llm-proxy/tests/test_llm_proxy_golden.py")
    assert spec and spec.loader
    golden = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = golden
    spec.loader.exec_module(golden)
    with tempfile.TemporaryDirectory() as tmp:
        async with golden.golden_rig(Path(tmp)) as rig:
            for cell in golden.CELLS:
                output = await golden.run_cell(cell, rig.proxy, rig.openai, rig.anthropic)
                cell.expected_path.parent.mkdir(parents=True, exist_ok=True)
                cell.expected_path.write_bytes(output)
                print("wrote", cell.expected_path.relative_to(ROOT))


if __name__ == "__main__":
    asyncio.run(main())
