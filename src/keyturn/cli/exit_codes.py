"""Exit statuses, documented in the README; scripts and CI pipelines depend on them."""

OK = 0
FAILED = 1  # an operation failed part-way, or an internal error
BAD_INPUT = 2  # a flag, the config file, an environment variable
OUT_OF_POLICY = 3  # `audit --check` found keys that need action
ACCESS = 4  # credentials missing or refused, endpoint unreachable, user not found
INTERRUPTED = 130
