"""The durable flow engine: versioned flows, triggers, journalled steps, leases, waits and fairness."""
