"""``python -m renderme360``."""

import sys

from .cli import main

sys.exit(main())
