"""Chaos activities against the ``kube`` target: game-server Pods and the Nodes they run on."""
