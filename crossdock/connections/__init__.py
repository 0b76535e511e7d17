"""Connections: a merchant's configured accounts in external systems, with encrypted credentials."""
