"""Probes of the platform's invariants, on any target: through its API and its Prometheus."""
