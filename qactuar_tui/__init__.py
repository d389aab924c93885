"""qactuar-tui: a Textual console for a running Qactuar server, over its admin socket."""
