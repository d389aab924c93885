"""One module per screen; ``base.ConsoleScreen`` is the frame they share."""
