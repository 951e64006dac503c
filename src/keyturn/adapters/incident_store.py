"""Where incident records go: a local directory (the CLI default) or an S3 prefix.

keyturn only ever *writes* these (a JSON document and its HTML rendering per incident); it
never reads them back to decide anything, because whoever the bucket policy or the
directory's permissions allow can write there too. Progress lives in the sealed incident
tag instead (keyturn.domain.quarantine). Writing the same name again replaces the file with
the fuller record, so a resumed response leaves one record per incident.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Protocol

from keyturn.adapters.aws_errors import translate
from keyturn.domain.errors import ConfigError, OperationFailedError
from keyturn.permissions import requires


class IncidentWriter(Protocol):
    def write(self, name: str, document: str, html: str) -> str:
        """Store `NAME.json` and `NAME.html`; return where the JSON went (no secret)."""
        ...


class LocalIncidents:
    """Files in a directory created 0700; each record written 0600, atomically."""

    def __init__(self, directory: Path) -> None:
        self._dir = directory

    def write(self, name: str, document: str, html: str) -> str:
        try:
            self._dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            for suffix, text in ((".html", html), (".json", document)):
                path = self._dir / f"{name}{suffix}"
                temporary = path.with_suffix(suffix + ".tmp")
                descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                    handle.write(text)
                os.replace(temporary, path)
        except OSError as exc:
            raise OperationFailedError(
                f"incident record not written to {self._dir}: {exc.strerror or exc}"
            ) from None
        return str(self._dir / f"{name}.json")


class S3Incidents:
    """Objects under `s3://BUCKET/PREFIX`, server-side encrypted."""

    def __init__(self, client: Any, bucket: str, prefix: str) -> None:
        self._s3 = client
        self._bucket = bucket
        self._prefix = prefix

    @requires("s3:PutObject")
    def write(self, name: str, document: str, html: str) -> str:
        """S3: PutObject, twice (the HTML, then the JSON)."""
        for suffix, text, kind in (
            (".html", html, "text/html; charset=utf-8"),
            (".json", document, "application/json"),
        ):
            key = f"{self._prefix}{name}{suffix}"
            with translate("s3:PutObject", f"s3://{self._bucket}/{key}"):
                self._s3.put_object(
                    Bucket=self._bucket,
                    Key=key,
                    Body=text.encode(),
                    ContentType=kind,
                    ServerSideEncryption="AES256",
                )
        return f"s3://{self._bucket}/{self._prefix}{name}.json"


def split_s3(location: str) -> tuple[str, str]:
    """`s3://bucket/prefix/` -> (bucket, "prefix/"); ConfigError when it is not one."""
    rest = location.removeprefix("s3://")
    bucket, _, prefix = rest.partition("/")
    if not bucket or rest == location:
        raise ConfigError(f"quarantine.record_location {location!r}: expected s3://BUCKET/PREFIX")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return bucket, prefix
