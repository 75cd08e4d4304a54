"""Modules a user gets wrong, for ``bridge serve`` and ``bridge check`` in a subprocess
(tests/integration_cli/test_mistakes.py) and in-process (tests/test_cli.py)."""
