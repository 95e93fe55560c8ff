"""The engine: a scenario is phases on one timeline, from deploy to teardown.

Submodules are imported by what needs them (``certify``, ``lifecycle``, ``timeline``) so that
chaos activities, which only append to the timeline, import quickly under plain ``chaos run``.
"""
