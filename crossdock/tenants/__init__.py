"""Tenants: partners, their merchants, and the merchants' environments."""
