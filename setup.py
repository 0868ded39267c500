"""Builds the optional C extensions; all metadata lives in pyproject.toml.

``statuswatch.core.decode._jsonscan`` speeds up the JSON decoders' fast path, and
``statuswatch.core._kernels`` the per-cell passes of every window. Both are
optional: without a C compiler the build goes on without them, and the decoders
decode every record with the full decoder and the scores run on numpy, with the
same results (``statuswatch.core.decode.jsondecoder.NATIVE_SCAN`` and
``statuswatch.core.kernels.ENABLED`` say whether each runs).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "statuswatch.core.decode._jsonscan",
            sources=["src/statuswatch/core/decode/_jsonscan.c"],
            optional=True,
        ),
        Extension(
            "statuswatch.core._kernels",
            sources=["src/statuswatch/core/_kernels.c"],
            # each value the IEEE result of numpy's operations: no fused multiply-add
            extra_compile_args=["-ffp-contract=off"],
            optional=True,
        ),
    ]
)
