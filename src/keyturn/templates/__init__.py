"""Default templates shipped in the package (read with importlib.resources)."""
