"""The pure core: values and decisions, no I/O, the clock passed in."""
