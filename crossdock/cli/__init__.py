"""The `crossdock` command line. Thin: parse, call a service, print a table or JSON."""
