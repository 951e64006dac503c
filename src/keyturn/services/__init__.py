"""Use cases: orchestrate ports one idempotent step at a time."""
