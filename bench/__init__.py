"""nbauth's benchmark suite against its peer libraries: ``python -m bench.run`` (see bench/README.md)."""
