"""Activities against the ``local`` target: its processes, addresses and timeline."""
