"""Chaos Toolkit activities, grouped by target as chaostoolkit-kubernetes groups by resource.

Module paths, function names and parameter names here are public API: experiments name them.
Every function takes JSON-friendly keyword parameters and finds the system under test through
``target_file`` (a ``target.json`` written by ``harness up`` or by a harness run).
"""
