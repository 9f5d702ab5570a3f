"""Part files: how the management commands write a file without ever leaving half of one.

``pgpay_export --output`` and ``pgpay_invoices --output`` / ``--zip`` write to
a :func:`part_file` beside the target (``.orders.csv.k3j9x2.part``) and rename
it onto the target with :func:`os.replace` once it is complete. A failure on
the way (a model's code raising, WeasyPrint missing, a full disk) leaves the
previous file whole; :func:`discard` removes the part. The part file is made
before the first row is read, so a target that cannot be written is an error
at once, not after an hour of work.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path


def part_file(target: Path) -> Path:
    """An empty file beside ``target``, to be renamed to it when complete.

    It has the permissions opening ``target`` itself would have given (the
    umask's, where :func:`tempfile.mkstemp` gives 0600). Raises ``OSError``
    when it cannot be written: a folder that does not exist, a ``target``
    that is a folder.
    """
    target = Path(target)
    if target.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a folder, not a file name")
    handle, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    os.close(handle)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(name, 0o666 & ~umask)
    return Path(name)


def discard(part: Path | None) -> None:
    """Remove a part file that was not renamed (None, or a part already gone: nothing to do)."""
    if part is not None:
        part.unlink(missing_ok=True)
