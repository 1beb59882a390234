"""fodns: self-hosted authoritative DNS for failover groups."""

__version__ = "0.1.0"
