"""Governance: the audit trail (and, later, approvals matrices, change control and retention)."""
