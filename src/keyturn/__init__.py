"""keyturn: owns the whole life of AWS access keys."""

__version__ = "0.1.0"
