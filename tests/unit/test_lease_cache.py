"""The credential cache refuses what it cannot prove only this user wrote (issue 14)."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from keyturn.adapters import lease_cache
from keyturn.adapters.lease_cache import (
    CachedCredential,
    CacheKey,
    CacheRefusedError,
    CredentialCache,
    duration_seconds,
)
from keyturn.cli.fast import _parse

NOW = datetime(2030, 1, 1, tzinfo=UTC)
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYSECRETKEY"
KEY = CacheKey("dev", "local:x", {"ttl": 3600, "display_name": "me"})


def credential(
    expires: datetime = NOW + timedelta(hours=1), lease: str = "aws/creds/dev/a"
) -> CachedCredential:
    return CachedCredential(lease, "AKIAEXAMPLE", SECRET, None, expires)


@pytest.fixture
def cache(tmp_path: Path) -> tuple[CredentialCache, list[str]]:
    warnings: list[str] = []
    return CredentialCache(tmp_path / "keyturn", timedelta(minutes=15), warnings.append), warnings


def entry(cache: CredentialCache) -> Path:
    return cache.directory / f"{KEY.digest()}.json"


def test_round_trip_private_files_and_no_secret_in_repr(cache) -> None:  # type: ignore[no-untyped-def]
    store, warnings = cache
    store.put(KEY, credential())
    assert store.get(KEY, NOW) == credential()
    assert oct(store.directory.stat().st_mode & 0o777) == "0o700"
    assert oct(entry(store).stat().st_mode & 0o777) == "0o600"
    assert SECRET not in repr(credential())
    assert warnings == []
    other = CacheKey("dev", "local:x", {"ttl": 7200, "display_name": "me"})
    assert store.get(other, NOW) is None  # another TTL is another credential


def test_expired_or_near_expiry_is_not_served(cache) -> None:  # type: ignore[no-untyped-def]
    store, warnings = cache
    store.put(KEY, credential(NOW + timedelta(minutes=14)))
    assert store.get(KEY, NOW) is None
    store.put(KEY, credential(NOW - timedelta(hours=1)))
    assert store.get(KEY, NOW) is None
    assert warnings == []


def test_a_group_or_world_readable_entry_is_refused(cache) -> None:  # type: ignore[no-untyped-def]
    store, warnings = cache
    store.put(KEY, credential())
    entry(store).chmod(0o644)
    assert store.get(KEY, NOW) is None
    [line] = warnings
    assert "mode 0644" in line
    assert SECRET not in line


def test_an_entry_owned_by_someone_else_is_refused(cache, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    store, warnings = cache
    store.put(KEY, credential())
    real = os.geteuid()
    monkeypatch.setattr(lease_cache.os, "geteuid", lambda: real + 1)
    with pytest.raises(CacheRefusedError, match="owned by uid"):  # the directory first
        store.get(KEY, NOW)
    folder = os.open(store.directory, os.O_RDONLY | os.O_DIRECTORY)
    try:  # and the file itself, planted by "another uid"
        assert store._read(folder, entry(store).name) is None
    finally:
        os.close(folder)
    assert f"owned by uid {real}, not you" in warnings[-1]


def test_a_symlinked_entry_is_never_followed(cache, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    store, warnings = cache
    store.put(KEY, credential())
    planted = tmp_path / "planted.json"
    planted.write_bytes(entry(store).read_bytes())
    planted.chmod(0o600)
    entry(store).unlink()
    entry(store).symlink_to(planted)
    assert store.get(KEY, NOW) is None
    assert "symlink" in warnings[0]


def test_garbage_and_entries_for_another_key_are_ignored(cache) -> None:  # type: ignore[no-untyped-def]
    store, warnings = cache
    store.put(KEY, credential())
    path = entry(store)
    path.write_text("{not json")
    assert store.get(KEY, NOW) is None
    data = {"schema": lease_cache.SCHEMA, "key": "0" * 64, "lease_id": "x"}
    path.write_text(json.dumps(data))
    assert store.get(KEY, NOW) is None
    assert len(warnings) == 2
    store.put(KEY, credential())  # the next issue replaces it
    assert store.get(KEY, NOW) is not None


@pytest.mark.parametrize("mode", [0o755, 0o770])
def test_a_directory_others_may_use_is_refused(tmp_path: Path, mode: int) -> None:
    directory = tmp_path / "keyturn"
    directory.mkdir(mode=mode)
    directory.chmod(mode)
    store = CredentialCache(directory)
    with pytest.raises(CacheRefusedError, match=f"mode {mode:04o}"):
        store.get(KEY, NOW)
    with pytest.raises(CacheRefusedError):
        store.put(KEY, credential())
    assert list(directory.iterdir()) == []


def test_a_symlinked_directory_is_refused(tmp_path: Path) -> None:
    real = tmp_path / "elsewhere"
    real.mkdir(mode=0o700)
    (tmp_path / "keyturn").symlink_to(real)
    with pytest.raises(CacheRefusedError, match="symlink"):
        CredentialCache(tmp_path / "keyturn").get(KEY, NOW)


def test_forget_removes_only_the_named_leases(cache) -> None:  # type: ignore[no-untyped-def]
    store, _ = cache
    store.put(KEY, credential(lease="aws/creds/dev/a"))
    other = CacheKey("ops", "local:x")
    store.put(other, credential(lease="aws/creds/ops/b"))
    assert store.forget(["aws/creds/dev/a"]) == 1
    assert store.get(KEY, NOW) is None
    assert store.get(other, NOW) is not None


def test_process_json_has_the_sdk_fields() -> None:
    answer = json.loads(CachedCredential("l", "AKIA1", SECRET, "tok", NOW).process_json())
    assert answer == {
        "Version": 1,
        "AccessKeyId": "AKIA1",
        "SecretAccessKey": SECRET,
        "SessionToken": "tok",
        "Expiration": "2030-01-01T00:00:00Z",
    }


def test_duration_grammar_matches_parse_duration() -> None:
    from keyturn.domain.leases import parse_duration

    for text in ("90", "1h", "1h30m", "2d", "15m", "1H"):
        assert duration_seconds(text) == parse_duration(text).total_seconds()
    assert duration_seconds("soon") is None


@pytest.mark.parametrize(
    ("args", "fast"),
    [
        (["creds", "dev", "--format", "process"], True),
        (["-c", "k.toml", "--profile", "p", "creds", "dev", "-f", "process", "--ttl", "1h"], True),
        (["creds", "dev", "--format=process", "--no-wait"], True),
        (["creds", "dev", "--format", "process", "--no-cache"], False),
        (["creds", "dev", "--format", "json"], True),  # parsed, but not `process`: slow path
        (["creds", "dev", "--help"], False),
        (["creds", "dev", "extra", "--format", "process"], False),
        (["lease", "list"], False),
        (["creds", "dev", "-f=process"], False),
    ],
)
def test_fast_path_takes_only_the_plain_command_line(args: list[str], fast: bool) -> None:
    assert (_parse(args) is not None) is fast


def test_records_are_immutable_values_that_copy() -> None:
    """dataclass(frozen=True, slots=True) by hand (lease_cache._Record, for start-up)."""
    import copy

    record = credential()
    with pytest.raises(AttributeError):
        record.access_key_id = "AKIAOTHER"  # type: ignore[misc]
    assert copy.deepcopy(record) == record
    assert copy.copy(KEY) == KEY
    other_key = CacheKey("dev", "local:x", {"ttl": 3600, "display_name": "you"})
    assert other_key != KEY
    other = CachedCredential(record.lease_id, "AKIAOTHER", SECRET, None, record.expiration)
    assert other != record
    assert SECRET not in repr(copy.deepcopy(record))


# -- the directory swapped between its check and its use (hostile review) -------------------


def _swap_after_the_directory_check(
    monkeypatch: pytest.MonkeyPatch, directory: Path, elsewhere: Path
) -> Path:
    """Right after the cache directory's stat (lstat by path, or fstat of its descriptor),
    move it away and put a symlink to `elsewhere` at its path: a component of the path the
    cache checked now leads somewhere else. Returns where the checked directory went."""
    moved = directory.with_name("checked-moved")
    real_lstat, real_fstat = os.lstat, os.fstat
    done: list[bool] = []

    def swap_once(info: os.stat_result) -> os.stat_result:
        if not done and info.st_ino == real_lstat(directory).st_ino:
            done.append(True)
            directory.rename(moved)
            directory.symlink_to(elsewhere)
        return info

    monkeypatch.setattr(
        lease_cache.os, "lstat", lambda p, *a, **k: swap_once(real_lstat(p, *a, **k))
    )
    monkeypatch.setattr(lease_cache.os, "fstat", lambda fd: swap_once(real_fstat(fd)))
    return moved


def test_a_write_lands_in_the_directory_checked_not_where_a_swapped_path_leads(
    cache, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    store, _ = cache
    store.put(KEY, credential())  # the directory exists, private
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    moved = _swap_after_the_directory_check(monkeypatch, store.directory, elsewhere)
    store.put(KEY, credential(lease="aws/creds/dev/b"))
    assert list(elsewhere.iterdir()) == []  # no secret written through the swapped path
    written = json.loads((moved / entry(store).name).read_text())
    assert written["lease_id"] == "aws/creds/dev/b"


def test_a_read_and_a_forget_use_the_directory_checked(
    cache, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    store, _ = cache
    store.put(KEY, credential())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    planted = elsewhere / entry(store).name
    planted.write_text(entry(store).read_text().replace("aws/creds/dev/a", "aws/creds/dev/x"))
    planted.chmod(0o600)
    _swap_after_the_directory_check(monkeypatch, store.directory, elsewhere)
    assert store.get(KEY, NOW) == credential()  # the checked directory's entry, not planted
    monkeypatch.undo()
    store.directory.unlink()
    store.directory.with_name("checked-moved").rename(store.directory)
    _swap_after_the_directory_check(monkeypatch, store.directory, elsewhere)
    assert store.forget(["aws/creds/dev/x"]) == 0  # the planted file is not in the checked dir
    assert planted.exists()
