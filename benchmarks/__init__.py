"""Side-by-side benchmarks of bridge against its peers; run with ``python -m benchmarks``."""
