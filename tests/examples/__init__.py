"""The examples under ``examples/``, each served by a real server and driven over HTTP."""
