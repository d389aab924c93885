"""Adapters that serve other frameworks' apps through Qactuar; each needs its framework installed."""
