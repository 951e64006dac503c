"""Lambda entry points: parse the event, call a service, raise on failure."""
