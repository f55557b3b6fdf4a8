"""The benchmark suite: run ``python bench/run.py`` from the repository root.

Each ``bench_*.py`` module runs as ``python -m bench.bench_x`` (so the modules share
``bench.measure`` the same way under mypy and at run time) and prints one JSON line per
figure, every figure a ratio against a raw anchor measured in the same run.
"""
