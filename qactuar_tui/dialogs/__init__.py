"""Modal dialogs: each is a ``ModalScreen`` that returns its answer with ``dismiss``."""
