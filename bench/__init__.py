"""keyturn's benchmarks (`make bench`), never part of `make test`.

`python -m bench` starts one separate `moto_server` process on 127.0.0.1, runs every
`bench/bench_<name>.py` module it finds against it, one after the other, and writes
`bench/results/<name>.json`.

A benchmark module is one function::

    def run(moto_url: str, runs: int) -> dict[str, Any]: ...

It may accept extra keyword options that `python -m bench` forwards when given (`users`,
from `--users N`; `sizes`, from `--sizes N,N,...`). It resets the server itself
(`bench.common.reset_moto`), repeats each measurement `runs` times and returns a JSON-able
dict. Two keys have a meaning to the runner:

- ``rows``: a list of `bench.common.Row` (metric, value, target, ok, note) printed as the table;
- ``ok``: False when a correctness check failed (the run then exits non-zero).

Everything else (``params``, ``raw``, ``medians``, ...) goes to the results file untouched.
"""
