"""Build the C extension; every other piece of metadata lives in pyproject.toml."""

from pathlib import Path

from setuptools import Extension, setup

CODECS = Path("atp_notebook/spice/codecs/src")

setup(
    ext_modules=[
        Extension(
            "atp_notebook.spice.codecs._codecs",
            # one file per codec; relative paths, as setuptools requires
            sources=sorted(str(p) for p in CODECS.glob("*.c")),
            depends=sorted(str(p) for p in CODECS.glob("*.h")),
            include_dirs=[str(CODECS)],
            libraries=["lz4"],  # liblz4 decodes LZ4 blocks (Debian liblz4-dev)
            extra_compile_args=["-O2", "-std=c11", "-Wall", "-Wextra", "-Wno-unused-parameter"],
        )
    ],
)
