"""Flow templates, per-merchant template instances and fleet upgrades (see docs/flows.md)."""
