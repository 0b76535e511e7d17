"""The HTTP layer: app factory, middleware, error mapping and authentication. Kept thin."""
