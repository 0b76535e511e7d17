"""Core: settings, database, tenancy, errors, ids and clock shared by every domain."""
