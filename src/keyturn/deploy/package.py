"""`make package`: the Lambda deployment zip, byte-for-byte reproducible.

What goes in: keyturn's own package without the CLI, the local sandbox and this deploy
tooling (no handler imports them), plus the distributions the handlers need, pinned to the
versions installed in the building environment:

- pydantic (+ pydantic_core, a compiled wheel), jinja2, hvac, aws-lambda-powertools;
- boto3/botocore too, although the Lambda runtime has them. The runtime's copy is
  upgraded by AWS on its own schedule, so the same zip could behave differently next
  month (retry modes, endpoint rules, new parameters); a bundled copy makes the zip the
  whole definition of what runs, which is what "reproducible" is for. It costs about
  half the zip's size; `--runtime-boto3` leaves them out.
- not typer/rich (CLI only).

Reproducible: no `__pycache__`/`.pyc`, entries sorted, every timestamp 1980-01-01, fixed
permissions and compression level, so the same sources and the same pinned wheels give the
same bytes (a test builds twice and compares hashes).

pydantic_core is compiled: the wheel pip picks is for the platform the build runs on. For
Lambda build on (or pass `--platform` for) manylinux x86_64 or aarch64 matching the
function's architecture; see the README.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
SOURCE = ROOT / "src" / "keyturn"
BUILD = ROOT / "build"
ZIP_NAME = "keyturn-lambda.zip"
EPOCH = (1980, 1, 1, 0, 0, 0)
LEFT_OUT = ("cli", "sandbox", "deploy")  # keyturn subpackages no handler imports

# Top-level requirements; their dependencies are found from the installed metadata.
REQUIREMENTS = ("pydantic", "jinja2", "hvac", "aws-lambda-powertools")
SDK = ("boto3",)


def closure(names: tuple[str, ...]) -> dict[str, str]:
    """name -> installed version for these distributions and everything they require
    (extras and environment markers that do not apply here are skipped)."""
    from packaging.requirements import Requirement

    found: dict[str, str] = {}
    todo = list(names)
    while todo:
        name = todo.pop()
        dist = metadata.distribution(name)
        key = dist.metadata["Name"].lower().replace("_", "-")
        if key in found:
            continue
        found[key] = dist.version
        for line in dist.requires or []:
            requirement = Requirement(line)
            if requirement.marker and not requirement.marker.evaluate({"extra": ""}):
                continue
            todo.append(requirement.name)
    return dict(sorted(found.items()))


def pins(with_sdk: bool) -> list[str]:
    names = REQUIREMENTS + (SDK if with_sdk else ())
    return [f"{name}=={version}" for name, version in closure(names).items()]


def install(pinned: list[str], target: Path, platform: str | None) -> None:
    """pip install the exact pins into `target`, once per set of pins (cached by hash)."""
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--no-deps",
        "--no-compile",
        "--only-binary=:all:",
        "--target",
        str(target),
        *pinned,
    ]
    if platform:
        command[4:4] = ["--platform", platform, "--implementation", "cp"]
    subprocess.run(command, check=True)


def dependencies(with_sdk: bool, platform: str | None) -> Path:
    pinned = pins(with_sdk)
    digest = hashlib.sha256("\n".join([*pinned, platform or "here"]).encode()).hexdigest()
    target = BUILD / "lambda-deps" / digest[:16]
    if not (target / ".complete").exists():
        shutil.rmtree(target, ignore_errors=True)
        install(pinned, target, platform)
        (target / ".complete").write_text("\n".join(pinned) + "\n")
    return target


def wanted(relative: Path) -> bool:
    parts = relative.parts
    if "__pycache__" in parts or relative.suffix in (".pyc", ".pyo"):
        return False
    if parts and parts[0] in ("bin", ".complete"):
        return False  # console scripts point at the build machine's interpreter
    return not (parts and parts[-1] in ("RECORD", "INSTALLER", "REQUESTED", "direct_url.json"))


def entries(deps: Path) -> dict[str, Path]:
    """Archive name -> file, for the dependencies and keyturn's own code."""
    found: dict[str, Path] = {}
    for path in deps.rglob("*"):
        relative = path.relative_to(deps)
        if path.is_file() and wanted(relative):
            found[relative.as_posix()] = path
    for path in SOURCE.rglob("*"):
        relative = path.relative_to(SOURCE)
        if relative.parts and relative.parts[0] in LEFT_OUT:
            continue
        if path.is_file() and wanted(relative):
            found[f"keyturn/{relative.as_posix()}"] = path
    return found


def write_zip(files: dict[str, Path], target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".tmp")
    with zipfile.ZipFile(partial, "w") as archive:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # unix, so the mode below is read
            mode = 0o755 if files[name].stat().st_mode & 0o111 else 0o644
            info.external_attr = (0o100000 | mode) << 16
            archive.writestr(info, files[name].read_bytes(), compresslevel=9)
    partial.replace(target)


def build(
    target: Path | None = None, *, with_sdk: bool = True, platform: str | None = None
) -> Path:
    target = target or BUILD / ZIP_NAME
    write_zip(entries(dependencies(with_sdk, platform)), target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the keyturn Lambda zip.")
    parser.add_argument("--output", type=Path, default=BUILD / ZIP_NAME)
    parser.add_argument("--runtime-boto3", action="store_true", help="leave boto3 out")
    parser.add_argument(
        "--platform",
        help="pip platform tag for the compiled wheels, e.g. manylinux2014_x86_64",
    )
    args = parser.parse_args(argv)
    path = build(args.output, with_sdk=not args.runtime_boto3, platform=args.platform)
    data = path.read_bytes()
    with zipfile.ZipFile(path) as archive:
        unpacked = sum(info.file_size for info in archive.infolist())
        count = len(archive.infolist())
    print(
        f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}: "
        f"{len(data) / 1e6:.1f} MB zipped, {unpacked / 1e6:.1f} MB unpacked, {count} files, "
        f"sha256 {hashlib.sha256(data).hexdigest()[:16]}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
