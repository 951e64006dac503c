"""The `keyturn` command: parse flags, call a service, render, map errors to exit codes."""
