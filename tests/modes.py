"""The process models every end-to-end suite runs against."""

SERVING_MODES = ["async", "prefork", "postfork"]
