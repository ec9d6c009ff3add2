"""Demos: the quickstart that drives policy_node on a tiny checkpoint."""
