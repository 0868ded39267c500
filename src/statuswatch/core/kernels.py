"""The core's per-cell passes in C (``_kernels.c``): a quiet window's screened share
scores, its expectations' cells, its share learning, its long horizons' rise gates and
the long reference's updates, each one loop over the cells where numpy takes half a
dozen passes or more. The extension is optional (built by ``pip install`` where a C
compiler is present): without it ``ENABLED`` is False and every caller takes its numpy
path, with the same numbers (``tests/unit/test_kernels.py`` holds the two to each
other).
"""

from __future__ import annotations

from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

__all__ = ["ENABLED", "contiguous", "native", "one_shape", "shaped"]

T = TypeVar("T", bound=npt.NDArray[np.generic])

try:
    from statuswatch.core import _kernels as native
except ImportError:  # not built: the numpy paths
    native = None  # type: ignore[assignment]

#: Whether the C kernels run (tests switch them off to compare with numpy).
ENABLED = native is not None


def contiguous(a: T | None) -> T | None:
    """``a`` in C order, as the kernels read it (itself where it is; None stays None).

    >>> contiguous(np.arange(6).reshape(2, 3)[:, 1]).flags.c_contiguous, contiguous(None)
    (True, None)
    """
    return None if a is None else np.ascontiguousarray(a)  # type: ignore[return-value]


def shaped(shape: tuple[int, ...], *arrays: tuple[npt.NDArray[Any] | None, type]) -> bool:
    """Whether each array given with its kind (None: absent) has ``shape`` and that kind,
    as a kernel reads it (else its caller takes the numpy path).

    >>> shaped((2,), (np.zeros(2, np.int64), np.int64), (None, np.float64))
    True
    >>> shaped((2,), (np.zeros(2), np.int64))
    False
    """
    return all(a is None or (a.shape == shape and a.dtype == kind) for a, kind in arrays)


def one_shape(*matrices: npt.NDArray[Any]) -> bool:
    """Whether ``matrices`` (a state the kernels index by one row stride) share one shape,
    each in C order."""
    shape = matrices[0].shape
    return all(m.shape == shape and m.flags.c_contiguous for m in matrices)
