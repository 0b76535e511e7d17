"""The demo installation: seeded tenants, users and tokens for `crossdock up --demo`."""
