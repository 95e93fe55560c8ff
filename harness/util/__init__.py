"""Small helpers with no knowledge of the harness's concepts."""
