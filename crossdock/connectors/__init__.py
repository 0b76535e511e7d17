"""Connectors to the systems Crossdock integrates, each with its contract-faithful simulator."""
