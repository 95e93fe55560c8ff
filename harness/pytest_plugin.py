"""pytest plugin of the harness (registered through the pytest11 entry point)."""
