"""refplat: the reference game-server hosting platform the harness certifies."""
