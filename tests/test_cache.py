import hashlib
import os

from robust_edit import cache


def test_file_sha256_is_the_content_hash_and_follows_changes(tmp_path, monkeypatch):
    monkeypatch.setenv("ROBUST_EDIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(cache, "_HASHES", None)
    f = tmp_path / "w.safetensors"
    f.write_bytes(b"a" * 1000)
    assert cache.file_sha256(f) == hashlib.sha256(b"a" * 1000).hexdigest()
    f.write_bytes(b"b" * 1000)
    os.utime(f, ns=(1, 1))  # new content, new mtime: hashed again
    assert cache.file_sha256(f) == hashlib.sha256(b"b" * 1000).hexdigest()


def test_a_known_file_is_not_read_again_in_a_new_process(tmp_path, monkeypatch):
    monkeypatch.setenv("ROBUST_EDIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(cache, "_HASHES", None)
    f = tmp_path / "w.safetensors"
    f.write_bytes(b"x" * 10)
    want = cache.file_sha256(f)
    monkeypatch.setattr(cache, "_HASHES", None)  # as a new process: only the index on disk
    monkeypatch.setattr("builtins.open", lambda *a, **k: (_ for _ in ()).throw(AssertionError(a)))
    assert cache.file_sha256(f) == want
