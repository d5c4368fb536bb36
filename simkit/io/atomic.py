"""`atomic`: write a file so that it is either complete or not there at all.

Every file simkit writes goes to a temporary name in the target's folder first and is
renamed onto the target only once it is complete, so an interrupted or failed write never
leaves a half-written file. This module knows nothing of what is written.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_path", "write_bytes"]


def _umask() -> int:
    # The umask can only be read by setting it; set it straight back.
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside `target`; rename it onto `target` only on success.

    The file gets the permissions an ordinary ``open(target, "w")`` would give it.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     target = Path(tmp) / "hello.txt"
    ...     with atomic_path(target) as part:
    ...         _ = part.write_text("hello")
    ...     target.read_text(), sorted(p.name for p in Path(tmp).iterdir())
    ('hello', ['hello.txt'])
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        # mkstemp makes the file private (0600); give it the usual mode before it appears.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_bytes(target: Path, data: bytes) -> None:
    """Write `data` to `target` atomically."""
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
