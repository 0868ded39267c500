"""Durable snapshots of the detector state: versioned plain JSON, written atomically.

Each snapshot is ``snapshot-<sequence>.json`` holding ``{"format", "sha256",
"state"}``; the checksum covers the canonical JSON of ``state``. A write goes to
a temp file, is fsynced, renamed into place, and the directory is fsynced, so a
crash at any moment leaves either the old or the new snapshot, never a torn one.
Loading refuses a corrupt or truncated file loudly and falls back to the next
older one; it never silently starts from nothing when snapshots exist.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from statuswatch.errors import ConfigError, StatuswatchError

log = logging.getLogger(__name__)

FORMAT = "statuswatch-snapshot"
_NAME = re.compile(r"^snapshot-(\d{12})\.json$")


class SnapshotError(StatuswatchError):
    """No usable snapshot, though some exist (all corrupt, or from another version)."""


def _canonical(state: dict[str, Any]) -> bytes:
    return json.dumps(state, sort_keys=True, separators=(",", ":")).encode()


class SnapshotStore:
    """Atomic, checksummed snapshot files in one directory, newest ``keep`` kept.

    >>> import tempfile
    >>> store = SnapshotStore(Path(tempfile.mkdtemp()))
    >>> store.write({"a": 1}); store.write({"a": 2})
    >>> store.load()
    {'a': 2}
    """

    def __init__(self, directory: Path, keep: int = 3) -> None:
        self.directory = directory
        self.keep = max(keep, 1)
        directory.mkdir(parents=True, exist_ok=True)

    def _files(self) -> list[tuple[int, Path]]:
        found = []
        for path in self.directory.iterdir():
            match = _NAME.match(path.name)
            if match:
                found.append((int(match.group(1)), path))
        return sorted(found)

    def write(self, state: dict[str, Any]) -> None:
        body = _canonical(state)
        doc = b'{"format":"%s","sha256":"%s","state":%s}' % (
            FORMAT.encode(), hashlib.sha256(body).hexdigest().encode(), body,
        )
        files = self._files()
        seq = files[-1][0] + 1 if files else 1
        final = self.directory / f"snapshot-{seq:012d}.json"
        tmp = self.directory / f".{final.name}.tmp"
        with tmp.open("wb") as out:
            out.write(doc)
            out.flush()
            os.fsync(out.fileno())
        tmp.replace(final)
        dir_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        for _, old in files[: max(0, len(files) + 1 - self.keep)]:
            old.unlink(missing_ok=True)

    @staticmethod
    def read(path: Path) -> dict[str, Any]:
        """One snapshot file's state; ``SnapshotError`` if it is not intact."""
        try:
            doc = json.loads(path.read_bytes())
        except (OSError, ValueError) as exc:
            raise SnapshotError(f"{path.name}: unreadable or truncated ({exc})") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise SnapshotError(f"{path.name}: not a statuswatch snapshot")
        state = doc.get("state")
        if not isinstance(state, dict):
            raise SnapshotError(f"{path.name}: no state")
        if hashlib.sha256(_canonical(state)).hexdigest() != doc.get("sha256"):
            raise SnapshotError(f"{path.name}: checksum mismatch (corrupt)")
        return state

    def load(self) -> dict[str, Any] | None:
        """The newest intact snapshot; None if there is none at all."""
        files = self._files()
        problems = []
        for _, path in reversed(files):
            try:
                return self.read(path)
            except SnapshotError as exc:
                log.error("refusing snapshot %s; trying an older one", exc)
                problems.append(str(exc))
        if problems:
            raise SnapshotError(
                f"every snapshot in {self.directory} is unusable: {'; '.join(problems)}. "
                "Move them away to start fresh."
            )
        return None

    def age_source(self) -> Path | None:
        files = self._files()
        return files[-1][1] if files else None


def open_store(state_dir: str | Path, keep: int, subdir: str = "") -> SnapshotStore:
    """A snapshot store in ``state.dir`` (or its ``subdir``), checked writable now
    rather than at the first snapshot; ``ConfigError`` naming the key otherwise."""
    try:
        store = SnapshotStore(Path(state_dir) / subdir, keep)
        with tempfile.TemporaryFile(dir=store.directory):
            pass
    except OSError as exc:
        raise ConfigError(
            f"state.dir {state_dir}: not a writable directory: {exc.strerror or exc}"
        ) from exc
    return store
