"""Its import fails inside the standard library, called from line 8 here."""

from __future__ import annotations

import json

SETTINGS = '{"debug": yes}'
CONFIG = json.loads(SETTINGS)

app = None
