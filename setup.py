"""Builds the optional C extension; all metadata lives in pyproject.toml.

``statuswatch.core.decode._jsonscan`` speeds up the JSON decoders' fast path.
It is optional: without a C compiler the build goes on without it and the
decoders decode every record with the full decoder, with the same results
(``statuswatch.core.decode.jsondecoder.NATIVE_SCAN`` says whether the scanner runs).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "statuswatch.core.decode._jsonscan",
            sources=["src/statuswatch/core/decode/_jsonscan.c"],
            optional=True,
        )
    ]
)
