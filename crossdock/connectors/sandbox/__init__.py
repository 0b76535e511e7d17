"""Contract-faithful simulators of the external APIs; shipped for the demo and partners' tests."""
