"""Build the C extension; every other piece of metadata lives in pyproject.toml."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "atp_notebook.spice.codecs._codecs",
            sources=["atp_notebook/spice/codecs/_codecs.c"],
            extra_compile_args=["-O2", "-std=c11", "-Wall", "-Wextra", "-Wno-unused-parameter"],
        )
    ],
)
