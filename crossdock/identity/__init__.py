"""Identity: users, service accounts, API tokens, roles, permissions and role bindings."""
