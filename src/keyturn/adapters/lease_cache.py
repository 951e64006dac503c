"""The per-user cache of issued credentials (`creds --format process`, `exec`).

An SDK runs its `credential_process` at every start; without a cache each start would
issue a new lease (a new IAM user for an `iam_user` role). So an issued credential is kept
in $XDG_CACHE_HOME/keyturn (else ~/.cache/keyturn) and handed out again until `margin`
before it expires, keyed by everything that decides what is issued: the role, the source
(this lease store, or a broker's URL) and the options that change the credential (TTL,
display name).

Trust: the cache hands out secrets, so a file in it is served only if it is state only
this user can have written: the directory is this user's, not a symlink, and neither group
nor others may use it (0700); the file is a regular file (never followed through a
symlink), owned by this user and private (0600). Anything else is refused with one line
and never served: a directory that fails disables the cache for the run; a file that
fails (or is not valid, or is for another key) is ignored and replaced by the next issue.
Files are written atomically (a private temporary file, then rename). No message here
ever carries a secret.

The directory is checked and used through one file descriptor (opened O_DIRECTORY |
O_NOFOLLOW, then fstat): every entry is opened, renamed and deleted relative to it
(`dir_fd=`), so the directory checked is the one used, even if a component of its path is
swapped (for a symlink elsewhere) between the check and the use.

Only the standard library is imported: the cached `credential_process` path runs before
boto3 or the settings model are loaded (cli/fast.py).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import stat
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

TYPE_CHECKING = False  # not typing's: the cached credential_process path avoids importing it
if TYPE_CHECKING:
    from typing import Any

SCHEMA = "keyturn.cache/v1"
# Reused until this long before expiry. 15 minutes, because botocore refreshes process
# credentials 15 minutes before they expire (advisory) and raises if the refreshed ones are
# within 10 minutes of expiry (mandatory): a smaller margin would hand the SDK the same
# near-expiry credential again and again, then make it fail.
DEFAULT_MARGIN = timedelta(minutes=15)
MAX_ENTRY_BYTES = 64 * 1024
PRIVATE = stat.S_IRWXG | stat.S_IRWXO
_DURATION = re.compile(r"^(?:\d+|(?:\d+[dhms])+)$")
_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}


class CacheRefusedError(Exception):
    """The cache directory is not private to this user: nothing in it can be trusted."""


def cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """$XDG_CACHE_HOME/keyturn, else ~/.cache/keyturn."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "keyturn"


def duration_seconds(text: str) -> int | None:
    """Seconds of a duration in `parse_duration`'s grammar, or None for anything it might
    read differently (the caller then takes the slow path, which validates properly)."""
    raw = text.strip().lower()
    if not _DURATION.match(raw):
        return None
    if raw.isdigit():
        return int(raw)
    return sum(int(n) * _UNITS[u] for n, u in re.findall(r"(\d+)([dhms])", raw))


def local_source(values: Callable[[str], str | None], environ: Mapping[str, str]) -> str:
    """Names the local lease source: the lease store, and the AWS target it issues in.

    `values` gives a setting's effective value by dotted name (None: unset); the fast path
    reads it from the raw config layers, the slow path from the validated settings, so both
    name the same source. The defaults here are the settings model's.
    """
    store = values("leases.store") or "sqlite"
    if store == "sqlite":
        path = values("leases.sqlite_path")
        if path:
            where = str(Path(path).expanduser().absolute())
        else:
            state = environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
            where = str(Path(state).absolute() / "keyturn" / "leases.db")
    else:
        where = values("leases.dynamodb_table") or "keyturn-leases"
    target = {
        "endpoint": values("aws.endpoint_url") or environ.get("AWS_ENDPOINT_URL") or "",
        "profile": values("aws.profile") or environ.get("AWS_PROFILE") or "",
        "region": values("aws.region")
        or environ.get("AWS_REGION")
        or environ.get("AWS_DEFAULT_REGION")
        or "",
        "role_arn": values("aws.role_arn") or "",
    }
    return "local:" + json.dumps({"store": store, "where": where, **target}, sort_keys=True)


def broker_source(url: str) -> str:
    """Names a broker as a source (its credentials are the broker's, not this store's)."""
    return "broker:" + url.rstrip("/")


class _Record:
    """A frozen record with value equality: dataclass(frozen=True, slots=True) by hand.

    dataclasses imports inspect and builds its methods with exec at import time, about
    8 ms of the cached credential_process path (issue 14), which runs at every SDK start.
    """

    __slots__: tuple[str, ...] = ()
    _hidden: tuple[str, ...] = ()  # fields kept out of repr (secrets)

    def __init__(self, **values: object) -> None:
        for name in self.__slots__:
            object.__setattr__(self, name, values[name])

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, _Record)
            and type(other) is type(self)
            and (self._values() == other._values())
        )

    def __hash__(self) -> int:
        return hash(self._values())

    def __reduce__(self) -> tuple[object, ...]:  # copy and pickle, past __setattr__
        return (_restore, (type(self), {name: getattr(self, name) for name in self.__slots__}))

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{name}={getattr(self, name)!r}" for name in self.__slots__ if name not in self._hidden
        )
        return f"{type(self).__name__}({shown})"


def _restore(cls: type[_Record], values: Mapping[str, object]) -> _Record:
    record = object.__new__(cls)
    for name, value in values.items():
        object.__setattr__(record, name, value)
    return record


class CacheKey(_Record):
    __slots__ = ("options", "role", "source")
    role: str
    source: str
    # Everything else that changes the credential: ttl (seconds), display_name, ...
    options: Mapping[str, str | int | None]

    def __init__(
        self, role: str, source: str, options: Mapping[str, str | int | None] | None = None
    ) -> None:
        super().__init__(role=role, source=source, options=dict(options or {}))

    def digest(self) -> str:
        canonical = json.dumps(
            {"role": self.role, "source": self.source, "options": dict(self.options)},
            sort_keys=True,
        )
        return hashlib.sha256(canonical.encode()).hexdigest()


class CachedCredential(_Record):
    """An issued credential as the cache holds it; the secret and token stay out of repr."""

    __slots__ = ("access_key_id", "expiration", "lease_id", "secret_access_key", "session_token")
    _hidden = ("secret_access_key", "session_token")
    lease_id: str
    access_key_id: str
    secret_access_key: str
    session_token: str | None
    expiration: datetime

    def __init__(
        self,
        lease_id: str,
        access_key_id: str,
        secret_access_key: str,
        session_token: str | None,
        expiration: datetime,
    ) -> None:
        super().__init__(
            lease_id=lease_id,
            access_key_id=access_key_id,
            secret_access_key=secret_access_key,
            session_token=session_token,
            expiration=expiration,
        )

    def process_json(self) -> str:
        """The AWS SDKs' `credential_process` answer (Version 1)."""
        answer: dict[str, Any] = {
            "Version": 1,
            "AccessKeyId": self.access_key_id,
            "SecretAccessKey": self.secret_access_key,
        }
        if self.session_token:
            answer["SessionToken"] = self.session_token
        answer["Expiration"] = self.expiration.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return json.dumps(answer)


class CredentialCache:
    def __init__(
        self,
        directory: Path,
        margin: timedelta = DEFAULT_MARGIN,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        self.directory = directory
        self.margin = margin
        self._warn = warn or (lambda line: None)

    # -- read ------------------------------------------------------------------------------

    def get(self, key: CacheKey, now: datetime) -> CachedCredential | None:
        """The cached credential for `key` if it is trusted and fresh, else None (one
        warning line for anything refused). Raises CacheRefusedError for a directory that
        is not private to this user."""
        digest = key.digest()
        with self._opened(create=False) as folder:
            if folder is None:
                return None
            data = self._read(folder, f"{digest}.json")
        if data is None:
            return None
        try:
            if data.get("schema") != SCHEMA or data.get("key") != digest:
                raise ValueError("it is for another key")
            found = CachedCredential(
                lease_id=_text(data, "lease_id"),
                access_key_id=_text(data, "access_key_id"),
                secret_access_key=_text(data, "secret_access_key"),
                session_token=data.get("session_token") or None,
                expiration=datetime.fromisoformat(_text(data, "expiration")),
            )
            if found.expiration.tzinfo is None or not isinstance(found.session_token, str | None):
                raise ValueError("it has a malformed field")
        except (ValueError, TypeError) as exc:
            self._warn(f"ignored cache entry {digest[:12]}: {exc}")
            return None
        if found.expiration - self.margin <= now:
            return None  # expired, or too close to expiry to hand out
        return found

    def _read(self, folder: int, name: str) -> dict[str, Any] | None:
        """The entry `name` in the checked directory `folder` (a descriptor), if trusted."""
        path = self.directory / name  # for messages only: never opened by path
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=folder)
        except FileNotFoundError:
            return None
        except OSError as exc:
            self._warn(f"refused cache entry {path}: {_why_unopenable(folder, name, exc)}")
            return None
        with os.fdopen(fd, "rb") as handle:
            info = os.fstat(handle.fileno())
            problem = _file_problem(info)
            if problem:
                self._warn(f"refused cache entry {path}: {problem}; it is never served")
                return None
            raw = handle.read(MAX_ENTRY_BYTES + 1)
        try:
            if len(raw) > MAX_ENTRY_BYTES:
                raise ValueError("too large")
            data = json.loads(raw)
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
        except ValueError:
            self._warn(f"ignored cache entry {path.name[:12]}: not a keyturn cache entry")
            return None
        return data

    # -- write -----------------------------------------------------------------------------

    def put(self, key: CacheKey, credential: CachedCredential) -> None:
        """Write atomically: a private temporary file in the directory, then rename, both
        relative to the checked directory's descriptor."""
        digest = key.digest()
        body = json.dumps(
            {
                "schema": SCHEMA,
                "key": digest,
                "role": key.role,
                "lease_id": credential.lease_id,
                "access_key_id": credential.access_key_id,
                "secret_access_key": credential.secret_access_key,
                "session_token": credential.session_token,
                "expiration": credential.expiration.astimezone(UTC).isoformat(),
            }
        ).encode()
        import secrets  # only when writing: reading is the hot path

        temp = f".{digest}.{secrets.token_hex(6)}.tmp"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
        with self._opened(create=True) as folder:
            assert folder is not None  # created, or CacheRefusedError raised
            fd = os.open(temp, flags, 0o600, dir_fd=folder)
            try:
                with os.fdopen(fd, "wb") as handle:
                    os.fchmod(handle.fileno(), 0o600)
                    handle.write(body)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(temp, f"{digest}.json", src_dir_fd=folder, dst_dir_fd=folder)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temp, dir_fd=folder)
                raise

    def forget(self, lease_ids: Iterable[str]) -> int:
        """Remove every entry naming one of `lease_ids` (a revoked lease is never served
        again); return how many. Entries that cannot be read are left to be replaced."""
        wanted = set(lease_ids)
        if not wanted:
            return 0
        removed = 0
        with self._opened(create=False) as folder:
            if folder is None:
                return 0
            names = sorted(
                name
                for name in os.listdir(folder)
                if name.endswith(".json") and not name.startswith(".")
            )
            for name in names:
                data = self._read(folder, name)
                if data is not None and data.get("lease_id") in wanted:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(name, dir_fd=folder)
                        removed += 1
        return removed

    # -- the directory -----------------------------------------------------------------------

    @contextlib.contextmanager
    def _opened(self, *, create: bool) -> Iterator[int | None]:
        """The cache directory as a descriptor, checked private to this user (fstat of that
        very descriptor); None when it does not exist and `create` is off. Raises
        CacheRefusedError for a symlink, a non-directory, or a directory not private."""
        fd = self._open_dir(create=create)
        if fd is None:
            yield None
            return
        try:
            self._check(fd)
            yield fd
        finally:
            os.close(fd)

    def _open_dir(self, *, create: bool) -> int | None:
        path = self.directory
        flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
        if create:
            path.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileExistsError):
                os.mkdir(path, 0o700)
        try:
            return os.open(path, flags)
        except FileNotFoundError:
            if create:
                raise CacheRefusedError(f"cache directory {path} vanished; not used") from None
            return None
        except OSError:
            pass
        if os.path.islink(path):
            raise CacheRefusedError(f"cache directory {path} is a symlink; not used")
        raise CacheRefusedError(f"cache directory {path} is not a directory; not used")

    def _check(self, fd: int) -> None:
        path = self.directory
        info = os.fstat(fd)
        if not stat.S_ISDIR(info.st_mode):  # O_DIRECTORY guarantees it; kept as a check
            raise CacheRefusedError(f"cache directory {path} is not a directory; not used")
        if info.st_uid != os.geteuid():
            raise CacheRefusedError(
                f"cache directory {path} is owned by uid {info.st_uid}, not you; not used"
            )
        mode = stat.S_IMODE(info.st_mode)
        if mode & PRIVATE:
            raise CacheRefusedError(
                f"cache directory {path} is mode {mode:04o} (others may use it); not used "
                f"(run: chmod 700 {path})"
            )


def _file_problem(info: os.stat_result) -> str | None:
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file"
    if info.st_uid != os.geteuid():
        return f"owned by uid {info.st_uid}, not you"
    mode = stat.S_IMODE(info.st_mode)
    if mode & PRIVATE:
        return f"mode {mode:04o}, not private"
    return None


def _why_unopenable(folder: int, name: str, exc: OSError) -> str:
    with contextlib.suppress(OSError):
        if stat.S_ISLNK(os.stat(name, dir_fd=folder, follow_symlinks=False).st_mode):
            return "a symlink; it is never followed"
    return exc.strerror or type(exc).__name__


def _text(data: Mapping[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value:
        raise ValueError(f"it has no {name}")
    return value
