"""Exit statuses: one contract for every command; scripts and CI pipelines depend on it.

- 0: done, and everything asked for was checked (`rotate --resume` with nothing
  half-done is 0, and says "nothing to resume").
- 1: something started and did not finish, or nothing was checked: one rotation or one
  `--org` account failed; an `--org` run over no ACTIVE account; an internal error.
- 2: bad input, nothing changed: an unknown flag or bad value (one `error:` line), a bad
  config file or `-c` naming a directory, `--account 12345`, `-o report.txt` without
  `--format`.
- 3: `--check` found keys out of policy (`audit`) or a non-empty plan (`enforce`).
- 4: keyturn could not reach, or was not allowed to use, what it needed: an unknown user
  (`audit --user nobody`, `rotate nobody`), access denied, no credentials, an endpoint
  unreachable or silent past `aws.timeout_seconds` / `vault.timeout_seconds`.
- 130: interrupted (Ctrl-C); during `rotate`, stderr names the users to
  `keyturn rotate --resume`.

Precedence: 1 beats 3 (a run in which anything failed is never reported as a mere finding,
and never as 0); when every user of a `rotate` failed for the same reason, that reason's
code is used (4 for `rotate nobody`), otherwise 1. Errors are one line on stderr starting
with `error:`; nothing else is printed on stderr on a non-terminal except per-account
failure lines of `--org` runs.
"""

OK = 0
FAILED = 1  # an operation failed part-way, checked nothing, or an internal error
BAD_INPUT = 2  # a flag, the config file, an environment variable
OUT_OF_POLICY = 3  # `audit --check` found keys that need action
ACCESS = 4  # credentials missing or refused, endpoint unreachable or silent, user not found
INTERRUPTED = 130
