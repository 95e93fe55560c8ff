"""Network faults between the test hosts of a namespaced local target (nftables)."""
