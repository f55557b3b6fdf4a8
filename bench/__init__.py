"""The benchmark suite: run ``python bench/run.py`` from the repository root.

Each ``bench_*.py`` module runs as ``python -m bench.bench_x`` (so the modules share
``bench.measure`` the same way under mypy and at run time) and prints one JSON line per
figure: a ratio against an anchor doing the same work, measured in the same run, or a plain
figure where nothing raw does the same work (see ``bench/README.md``).
"""
