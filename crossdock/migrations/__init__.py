"""Alembic migrations, applied by `crossdock db upgrade` and on `crossdock up`."""
