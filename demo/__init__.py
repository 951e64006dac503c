"""`make demo`: keyturn end to end against local moto and OpenBao servers.

Each capability adds `demo/stage_<name>.py` with `def run(ctx: DemoContext) -> None`;
`demo/__main__.py` runs the stages that exist, in story order.
"""

from demo.context import DemoContext, DemoError, StageSkipped

__all__ = ["DemoContext", "DemoError", "StageSkipped"]
