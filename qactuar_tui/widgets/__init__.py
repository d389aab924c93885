"""Reusable widgets: each knows how to draw what it is given, nothing about the server or the app."""
