"""What the global options carry to every subcommand."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the settings model (pydantic) loads only when a command needs it
    from keyturn.config import LoadedSettings


@dataclass
class CliContext:
    config: Path | None = None
    profile: str | None = None
    region: str | None = None
    role_arn: str | None = None
    endpoint_url: str | None = None
    debug: bool = False

    def settings(
        self,
        flags: Mapping[str, Any] | None = None,
        flag_names: Mapping[str, str] | None = None,
    ) -> LoadedSettings:
        """Validated settings; global flags beat the command's own, which beat env/file."""
        from keyturn.config import load_settings

        merged: dict[str, Any] = dict(flags or {})
        merged.update(
            {
                "aws.profile": self.profile,
                "aws.region": self.region,
                "aws.role_arn": self.role_arn,
                "aws.endpoint_url": self.endpoint_url,
            }
        )
        names = {
            "aws.profile": "--profile",
            "aws.region": "--region",
            "aws.role_arn": "--role-arn",
            "aws.endpoint_url": "--endpoint-url",
            **(flag_names or {}),
        }
        return load_settings(self.config, flags=merged, flag_names=names)
