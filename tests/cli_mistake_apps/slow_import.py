"""An import that takes long (a big project's): Ctrl+C during it ends the command quietly.

It writes the file named by $BRIDGE_TEST_IMPORTING once the import is under way."""

from __future__ import annotations

import os
import time

with open(os.environ["BRIDGE_TEST_IMPORTING"], "w") as marker:
    marker.write("importing\n")
time.sleep(30)

app = None
