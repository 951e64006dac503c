"""`python -I -S bench/peak_rss.py OUT -- ARGV...`: run ARGV, write its peak RSS (KiB) to OUT.

Why a launcher: on Linux a child's `ru_maxrss` also counts the RSS its parent had when it
forked (the high-water mark survives exec), so measuring keyturn straight from the bench
process, which may hold a 24 MB synthetic report, would charge the bench's memory to keyturn.
Forked from this tiny interpreter (~10 MB, a floor far below anything measured), the figure
is the program's own. Only the standard library's `os`, nothing imported after start-up.
"""

import os
import sys


def main() -> int:
    out, separator, *argv = sys.argv[1:]
    if separator != "--" or not argv:
        sys.stderr.write("usage: peak_rss.py OUT -- ARGV...\n")
        return 2
    pid = os.fork()
    if pid == 0:
        try:
            os.execvp(argv[0], argv)  # noqa: S606 - argv comes from the bench itself
        finally:
            os._exit(127)
    _, status, usage = os.wait4(pid, 0)
    with open(out, "w", encoding="ascii") as handle:
        handle.write(f"{usage.ru_maxrss}\n")
    return os.waitstatus_to_exitcode(status)


if __name__ == "__main__":
    sys.exit(main())
