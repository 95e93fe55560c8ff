"""Drivers: each wraps one outside tool and turns its errors into harness errors."""
