"""Resilience and validation test harness for game-server hosting platforms."""

__all__: list[str] = []
