"""The raw HTTP/1.x request corpus (see corpus.py)."""
