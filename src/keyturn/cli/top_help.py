"""`keyturn --help` drawn with rich alone: typer's look, without typer, click or markdown.

typer draws help through typer.rich_utils, whose import pulls in rich.markdown (and
markdown_it), rich.traceback, rich.pretty and pygments: about half of what `keyturn --help`
cost (issue 14's start-up target). The top-level help needs none of it: its texts are one
line each, with at most an inline code span. This module builds the same panels from the
same objects typer would (Console settings, styles, Table and Panel options copied from
typer 0.29's rich_utils), fed from cli/command_table.py. tests/unit/test_top_help.py
checks the output is byte for byte typer's, plain and coloured, at several widths; if a
future typer draws differently, that test says so and this module follows it.

Only the top level is drawn here; a command's own help goes through typer as before.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from keyturn.cli.command_table import APP_HELP, COMMANDS, GLOBAL_OPTIONS

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

USAGE = "Usage: keyturn [OPTIONS] COMMAND [ARGS]..."

# typer.rich_utils' styles and highlighter patterns (typer 0.29).
STYLE_OPTION = "bold cyan"
STYLE_SWITCH = "bold green"
STYLE_TYPES = "bold yellow"
STYLE_TYPES_SEPARATOR = "dim"
STYLE_USAGE = "yellow"
STYLE_USAGE_COMMAND = "bold"
STYLE_PANEL_BORDER = "dim"
STYLE_COMMAND_NAME = "bold cyan"
OPTION_PATTERNS = [
    r"(^|\W)(?P<switch>\-\w+)(?![a-zA-Z0-9])",
    r"(^|\W)(?P<option>\-\-[\w\-]+)(?![a-zA-Z0-9])",
    r"(?P<types>\<[^\>]+\>)",
    r"(?P<usage>Usage: )",
]
TYPES_PATTERNS = [
    r"^(?P<types_sep>(\[|<))",
    r"(?P<types_sep>\|)",
    r"(?P<types_sep>(\]|>))(\.\.\.)?$",
]


def print_top_help() -> None:
    from rich.columns import Columns
    from rich.highlighter import RegexHighlighter
    from rich.padding import Padding
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    class OptionHighlighter(RegexHighlighter):
        highlights = OPTION_PATTERNS

    class TypesHighlighter(RegexHighlighter):
        highlights = TYPES_PATTERNS

    highlighter = OptionHighlighter()
    types_highlighter = TypesHighlighter()
    console = _console(highlighter)

    console.print(Padding(highlighter(Text(USAGE)), 1), style=STYLE_USAGE_COMMAND)
    console.print(Padding(_inline(APP_HELP), (0, 1, 1, 1)))

    options = Table(
        highlight=True,
        show_header=False,
        expand=True,
        box=None,
        show_lines=False,
        leading=0,
        border_style=None,
        row_styles=None,
        pad_edge=False,
        padding=(0, 1),
    )
    for long_name, short_name, label, text in GLOBAL_OPTIONS:
        options.add_row(
            highlighter(Text(long_name)),
            highlighter(Text(short_name)),
            Text(""),
            Text(""),
            types_highlighter(Text(label, style=STYLE_TYPES, overflow="fold")),
            Columns([_inline(text)]),  # typer's cell, which the column widths depend on
        )
    console.print(
        Panel(options, border_style=STYLE_PANEL_BORDER, title="Options", title_align="left")
    )

    commands = Table(
        highlight=False,
        show_header=False,
        expand=True,
        box=None,
        show_lines=False,
        leading=0,
        border_style=None,
        row_styles=None,
        pad_edge=False,
        padding=(0, 1),
    )
    commands.add_column(style=STYLE_COMMAND_NAME, no_wrap=True, width=max(map(len, COMMANDS)))
    commands.add_column("Description", justify="left", no_wrap=False, ratio=10)
    for name, (_, _, summary, _) in COMMANDS.items():
        commands.add_row(Text(name), _inline(summary))
    console.print(
        Panel(commands, border_style=STYLE_PANEL_BORDER, title="Commands", title_align="left")
    )
    console.file.write("\n")  # click echoes typer's (empty) help text with its newline


def _console(highlighter: object) -> Console:
    """typer's help console: its theme, and its environment switches."""
    from rich.console import Console
    from rich.theme import Theme

    width = os.environ.get("TERMINAL_WIDTH")
    force: bool | None = (
        True
        if os.environ.get("GITHUB_ACTIONS")
        or os.environ.get("FORCE_COLOR")
        or os.environ.get("PY_COLORS")
        else None
    )
    if os.environ.get("_TYPER_FORCE_DISABLE_TERMINAL"):
        force = False
    return Console(
        theme=Theme(
            {
                "option": STYLE_OPTION,
                "switch": STYLE_SWITCH,
                "negative_option": "bold magenta",
                "negative_switch": "bold red",
                "types": STYLE_TYPES,
                "types_sep": STYLE_TYPES_SEPARATOR,
                "usage": STYLE_USAGE,
            }
        ),
        highlighter=highlighter,  # type: ignore[arg-type]
        color_system="auto",
        force_terminal=force,
        width=int(width) if width else None,
    )


def _inline(text: str) -> Text:
    """One line of help as typer's markdown mode draws it: `code` spans styled, no backticks.

    Only what the one-line texts use is supported: a summary with emphasis or a link
    would draw differently from typer's, and tests/unit/test_top_help.py says so.
    """
    from rich.text import Text

    line = Text(justify="left", end="\n")
    for index, part in enumerate(text.split("`")):
        line.append(part, style="markdown.code" if index % 2 else "")
    return line
