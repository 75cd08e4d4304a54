"""The compatibility matrix: real frameworks on real servers through the bridge.

``cells.py`` defines the matrix, ``apps/`` holds one small app per framework (all with the
same behaviour), ``checks.py`` the requests every cell must answer, ``test_matrix.py`` one
test per cell, and ``report.py`` renders the README's table from a run.
"""
