"""An app whose import kills the process, as a broken C extension would."""

import os

os._exit(13)
