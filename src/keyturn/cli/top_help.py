"""`keyturn --help` without typer: typer's look, drawn by rich or, when plain, by hand.

typer draws help through typer.rich_utils, whose import pulls in rich.markdown (and
markdown_it), rich.traceback, rich.pretty and pygments: about half of what `keyturn --help`
cost (issue 14's start-up target). The top-level help needs none of it: its texts are one
line each, with at most an inline code span. For a terminal this module builds the same
panels from the same objects typer would (Console settings, styles, Table and Panel
options copied from typer 0.29's rich_utils), fed from cli/command_table.py.
tests/unit/test_top_help.py checks the output is byte for byte typer's, plain and
coloured; if a future typer draws differently, that test says so and this module follows.

Plain output (a pipe, a file: no colours; scripts, tests and the bench) is drawn without
importing rich at all (`plain_help`): rich's layout of these two tables reproduced, for
widths where the test checks it against typer at every width (MIN_PLAIN_WIDTH and up);
anything else (a terminal, colour forced, a narrower width) is drawn by rich. Importing
rich.console alone costs about as much as the whole plain drawing.

Only the top level is drawn here; a command's own help goes through typer as before.
"""

from __future__ import annotations

import os
import sys

from keyturn.cli.command_table import APP_HELP, COMMANDS, GLOBAL_OPTIONS

TYPE_CHECKING = False  # not typing's: `keyturn --help` does not import typing
if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table
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


# Below this width the options table's last column collapses differently; rich draws it.
MIN_PLAIN_WIDTH = 50
# Environment that makes rich (or typer's console) colour, size or detect differently.
RICH_SWITCHES = (
    "FORCE_COLOR",
    "PY_COLORS",
    "GITHUB_ACTIONS",
    "TTY_COMPATIBLE",
    "TTY_INTERACTIVE",
    "TERMINAL_WIDTH",
    "_TYPER_FORCE_DISABLE_TERMINAL",
    "JUPYTER_COLUMNS",
)


def print_top_help() -> None:
    width = _plain_width()
    text = plain_help(width) if width is not None else None
    if text is not None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    _rich_help()


def _plain_width() -> int | None:
    """The width rich would draw at when its output is plain, or None when it would not be
    plain (a terminal, or an environment switch this module does not reproduce)."""
    if sys.platform == "win32" or any(name in os.environ for name in RICH_SWITCHES):
        return None  # rich sizes Windows consoles its own way
    try:
        if sys.stdout.isatty():
            return None
    except (AttributeError, ValueError):
        return None
    width: int | None = None
    for descriptor in (0, 1, 2):  # rich's order: the first that is a terminal gives its size
        try:
            width = os.get_terminal_size(descriptor).columns
        except (AttributeError, ValueError, OSError):
            continue
        break
    columns = os.environ.get("COLUMNS")
    if columns is not None and columns.isdigit():
        width = int(columns)
    return width or 80


def plain_help(width: int) -> str | None:
    """The top-level help as rich draws it without colour at `width`, or None where this
    reproduction is not known to match (narrow widths, a word longer than its column)."""
    if width < MIN_PLAIN_WIDTH:
        return None
    lines: list[str] = []
    blank = " " * width

    def padded(text_lines: list[str] | None, inner: int) -> bool:
        if text_lines is None:
            return False
        lines.extend(f" {line.ljust(inner)} " for line in text_lines)
        return True

    lines.append(blank)
    if not padded(_wrap(USAGE, width - 2), width - 2):
        return None
    lines.append(blank)
    if not padded(_wrap(APP_HELP.replace("`", ""), width - 2), width - 2):
        return None
    lines.append(blank)

    inner = width - 4  # a panel's border and its one-column padding each side
    long_w = max(len(long) for long, _, _, _ in GLOBAL_OPTIONS)
    short_w = max(len(short) for _, short, _, _ in GLOBAL_OPTIONS)
    type_w = max(len(label) for _, _, label, _ in GLOBAL_OPTIONS)
    # Column widths with their padding (none at the table's edges), as rich's collapse
    # leaves them: every column at its widest, the help column taking what is left.
    fixed = [long_w + 1, short_w + 2, 2, 2, type_w + 2]
    help_w = inner - sum(fixed) - 1
    if help_w < 1:
        return None
    body: list[str] = []
    for long_name, short_name, label, text in GLOBAL_OPTIONS:
        wrapped = _wrap(text.replace("`", ""), help_w)
        if wrapped is None:
            return None
        for index, part in enumerate(wrapped):
            first = index == 0
            cells = [
                (long_name if first else "").ljust(long_w) + " ",
                " " + (short_name if first else "").ljust(short_w) + " ",
                "  ",
                "  ",
                " " + (label if first else "").ljust(type_w) + " ",
                " " + part.ljust(help_w),
            ]
            body.append("".join(cells))
    lines.extend(_panel("Options", body, width))

    name_w = max(map(len, COMMANDS))
    summary_w = inner - (name_w + 1) - 1
    body = []
    for name, (_, _, summary, _) in COMMANDS.items():
        wrapped = _wrap(summary.replace("`", ""), summary_w)
        if wrapped is None:
            return None
        for index, part in enumerate(wrapped):
            label = name if index == 0 else ""
            body.append(f"{label.ljust(name_w)}  {part.ljust(summary_w)}")
    lines.extend(_panel("Commands", body, width))
    return "\n".join(lines) + "\n\n"  # click echoes typer's (empty) help text: one more


def _panel(title: str, body: list[str], width: int) -> list[str]:
    """rich's Panel (ROUNDED box, title on the left, padding (0, 1)) around `body`."""
    heading = f" {title} "
    top = "╭─" + heading + "─" * (width - 3 - len(heading)) + "╮"
    return [top, *(f"│ {line} │" for line in body), "╰" + "─" * (width - 2) + "╯"]


def _wrap(text: str, width: int) -> list[str] | None:
    """rich's word wrap (rich._wrap.divide_line) for words that fit; None if one does not."""
    if not text:
        return [""]
    lines: list[str] = []
    line = ""
    for word in _words(text):
        length = len(word.rstrip())
        if length > width:
            return None  # rich would fold it; not reproduced
        if width - len(line) >= length:
            line += word
        else:
            lines.append(line)
            line = word
    lines.append(line)
    return [part.rstrip() for part in lines]


def _words(text: str) -> list[str]:
    """rich's words: `\\s*\\S+\\s*` (each with the space after it), without importing re."""
    words: list[str] = []
    start, end = 0, len(text)
    while start < end:
        stop = start
        while stop < end and text[stop].isspace():
            stop += 1
        if stop == end:
            break
        while stop < end and not text[stop].isspace():
            stop += 1
        while stop < end and text[stop].isspace():
            stop += 1
        words.append(text[start:stop])
        start = stop
    return words


def _rich_help() -> None:
    from rich.columns import Columns
    from rich.highlighter import RegexHighlighter
    from rich.padding import Padding
    from rich.panel import Panel
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

    options = _grid(highlight=True)
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

    commands = _grid(highlight=False)
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


def _grid(*, highlight: bool) -> Table:
    """A borderless panel table, as typer's rich_utils builds both of its panels."""
    from rich.table import Table

    return Table(
        highlight=highlight,
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
