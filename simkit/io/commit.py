"""`commit`: change a folder's files all at once, one writer at a time.

A run folder is read as a whole: outputs that belong to one run and a manifest that belongs
to another would be a lie. Every command that writes a run folder (``run``, ``replay``, the
emulator's recording, ``datafeed import``, ``report``) does so through one
:class:`RunFolderTransaction`, which works like this:

1. **Lock.** The folder's lock file ``.simkit.lock`` is opened and locked with ``flock``
   (exclusive, without waiting); it then holds the pid and the command. A second writer is
   refused at once, in one line naming the folder and the command that holds it. The system
   releases a lock when its process dies, so a lock left by a killed process is simply
   taken; the file is removed when the lock is released (a writer that locked a file
   already removed checks the inode and tries again).
2. **Finish what was interrupted.** With the lock held nobody else writes, so a commit
   journal left by a process that died is replayed (step 4), and temporary files left by one
   that died before its commit (``.NAME.XXXXXXXX.tmp``) are removed.
3. **Stage.** Each new file is written under a temporary name in the folder itself (so that
   it moves into place by a rename, on the same file system); the old files stay as they
   were. A failure or an interrupt here removes the temporary files: the old run is intact.
4. **Commit.** The temporary files are flushed to disk, then the journal
   ``.simkit-commit.json`` (every rename to make, the manifest last, and the stale files to
   remove) is written and renamed into place: that rename is the commit point. The renames
   are then made in order, the stale files removed, and the journal deleted. Each step can
   be made again, so a process killed half-way leaves a journal that the next command
   (a writer in step 2, or a reader through :func:`settle`) carries to the end.

So at any moment the folder holds the complete old files, or a journal that completes the
new ones; a reader that finds a journal it cannot carry out (another process holds the
lock, or the folder may not be written) refuses in one line rather than read a mix. The
manifest, renamed last, records the hashes of what it describes, and readers check them
(:func:`simkit.io.runs.verify_run`), which also catches files edited by hand.

While a transaction is open in the main thread, SIGTERM and SIGHUP (when nothing else
handles them) raise :class:`Interrupted`, as SIGINT raises KeyboardInterrupt, so that the
clean-up runs and no temporary file is left behind.

This module knows nothing of what the files hold.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import queue
import re
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, TypeVar

from simkit.errors import RunDirError

__all__ = [
    "JOURNAL",
    "LOCK",
    "Handoff",
    "Interrupted",
    "RunFolderTransaction",
    "alongside",
    "is_own",
    "lock",
    "settle",
    "write_files",
]

LOCK = ".simkit.lock"
"""The lock file of a folder being written."""
JOURNAL = ".simkit-commit.json"
"""The journal of a commit under way: the renames to make, the manifest last."""
_TEMPORARY = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")
# For the tests of crash safety: the process dies (os._exit) right after this many renames of
# a commit (the journal's included). Unset in normal use.
_CRASH_ENV = "SIMKIT_TEST_CRASH_AFTER_RENAME"
_T = TypeVar("_T")


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGHUP arrived while a folder was being written."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(signum)


@contextmanager
def _signals_raise() -> Iterator[None]:
    """SIGTERM and SIGHUP raise :class:`Interrupted` in the main thread while open, unless
    something else handles them already (an event loop)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    changed = {}
    for signum in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(signum) == signal.SIG_DFL:
            changed[signum] = signal.signal(signum, _raise)
    try:
        yield
    finally:
        for signum, old in changed.items():
            signal.signal(signum, old)


@contextmanager
def _signals_held() -> Iterator[None]:
    """Hold SIGINT, SIGTERM and SIGHUP back while cleaning up, so that clean-up runs whole."""
    held = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _holder(fd: int) -> str:
    """Who holds the lock of the lock file open as `fd`, as it wrote (it writes just after
    taking the lock, so a moment is allowed for that)."""
    for _ in range(20):
        with contextlib.suppress(OSError, ValueError):
            text = os.pread(fd, 200, 0).decode("utf-8", "replace").split()
            if len(text) >= 2:
                return f"`{' '.join(text[1:])}` (pid {int(text[0])})"
        time.sleep(0.005)
    return "another simkit command"


@contextmanager
def lock(folder: str | os.PathLike[str], command: str) -> Iterator[None]:
    """Hold the lock of the existing folder `folder` for `command`, or refuse at once.

    Raises
    ------
    RunDirError
        Another process holds the lock (the message names it).
    OSError
        The lock file cannot be created (the folder may not be written); names the folder.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     with lock(tmp, "simkit replay"):
    ...         try:
    ...             with lock(tmp, "simkit run"):
    ...                 pass
    ...         except RunDirError as exc:
    ...             print(str(exc).replace(tmp, "DIR").split(" (pid")[0])
    DIR: in use by `simkit replay`
    """
    root = Path(folder)
    path = root / LOCK
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        except OSError as exc:
            raise OSError(exc.errno, exc.strerror, str(root)) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise RunDirError(
                f"{root}: in use by {holder}; wait for it to finish, or write elsewhere"
            ) from None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # the last holder removed the file before our lock: lock the new one
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {command}\n".encode(), 0)
        yield
    finally:
        with contextlib.suppress(OSError):
            path.unlink()
        os.close(fd)


def is_own(name: str) -> bool:
    """Whether a file name is one of this module's: the lock, the journal, or a temporary
    file (perhaps left by a process that was killed; the next writer removes it)."""
    return name in (LOCK, JOURNAL) or bool(_TEMPORARY.match(name))


def _replay_journal(root: Path) -> None:
    """Carry out the commit `root`'s journal records (each step may already be done)."""
    journal = root / JOURNAL
    try:
        plan = json.loads(journal.read_text(encoding="utf-8"))
        renames = [(str(a), str(b)) for a, b in plan["renames"]]
        stale = [str(name) for name in plan["remove"]]
    except (ValueError, KeyError, TypeError):
        raise RunDirError(
            f"{journal}: not a journal simkit wrote; remove it and write the run again"
        ) from None
    _apply(root, renames, stale, crash_after=None, done=1)


def _apply(
    root: Path, renames: list[tuple[str, str]], stale: list[str], *, crash_after: int | None, done: int
) -> None:
    for temporary, name in renames:
        if name == renames[-1][1]:
            for old in stale:
                (root / old).unlink(missing_ok=True)
        if (root / temporary).exists():
            os.replace(root / temporary, root / name)
            done += 1
            if crash_after is not None and done >= crash_after:
                os._exit(99)
    _fsync_folder(root)
    (root / JOURNAL).unlink(missing_ok=True)


def _fsync_folder(root: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(root, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _recover(root: Path) -> None:
    """With the lock held: finish an interrupted commit, remove an abandoned one's files."""
    if (root / JOURNAL).exists():
        _replay_journal(root)
    for leftover in root.iterdir():
        if _TEMPORARY.match(leftover.name) and leftover.is_file():
            leftover.unlink(missing_ok=True)


def settle(folder: str | os.PathLike[str]) -> None:
    """Make sure `folder` holds no commit half-done before it is read.

    A journal left by a process that died is carried out (under the lock). A folder whose
    commit is under way (another process holds the lock) or cannot be finished (the folder
    may not be written) is refused in one line (:class:`~simkit.errors.RunDirError`), rather
    than read half old, half new. A missing folder is left for the reader to refuse.
    """
    root = Path(folder)
    if not (root / JOURNAL).exists():
        return
    try:
        with lock(root, "simkit (finishing an interrupted write)"):
            _recover(root)
    except OSError as exc:
        raise RunDirError(
            f"{root}: a write was interrupted and cannot be finished ({exc.strerror or exc}); run the "
            "command again once the folder may be written"
        ) from None


def file_sha256(file: Path) -> str:
    """The SHA-256 of `file`'s bytes, in hex (hashlib lets go of the GIL while it hashes)."""
    with file.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


class RunFolderTransaction:
    """Replace files of the existing folder `folder` all at once (see the module's text).

    Use it as a context manager: it takes the lock (refusing at once if another process
    holds it) and finishes an interrupted commit; :meth:`stage` gives a temporary file for
    each new file; :meth:`commit` puts them all in place, the last staged (the manifest)
    last. Leaving the block without a commit, by an error or an interrupt, removes the
    temporary files and leaves the folder as it was.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     with RunFolderTransaction(tmp, "example") as txn:
    ...         _ = txn.stage("data.txt").write_text("new")
    ...         _ = txn.stage("manifest.json").write_text("{}")
    ...         txn.commit()
    ...     sorted(p.name for p in Path(tmp).iterdir())
    ['data.txt', 'manifest.json']
    """

    def __init__(self, folder: str | os.PathLike[str], command: str) -> None:
        self.folder = Path(folder)
        self.command = command
        self._staged: dict[str, Path] = {}
        self._digests: dict[Path, str] = {}
        self._committed = False
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> RunFolderTransaction:
        with contextlib.ExitStack() as stack:
            stack.enter_context(_signals_raise())
            stack.enter_context(lock(self.folder, self.command))
            _recover(self.folder)
            self._stack = stack.pop_all()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        with _signals_held():
            if not self._committed:
                for temporary in self._staged.values():
                    temporary.unlink(missing_ok=True)
            self._stack.close()

    def stage(self, name: str) -> Path:
        """A new, empty temporary file in the folder that :meth:`commit` renames to `name`.

        Staging a name again replaces the earlier temporary file.
        """
        if self._committed:
            raise RuntimeError("RunFolderTransaction: already committed")
        if name in self._staged:
            self._staged.pop(name).unlink(missing_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=self.folder)
        os.close(fd)
        # mkstemp makes the file private (0600); give it the mode a plain open would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        self._staged[name] = Path(tmp)
        return Path(tmp)

    def current(self, path: Path) -> Path:
        """Where the content `path` (a file of the folder) will have after the commit is now:
        its temporary file if it is staged, else `path` itself."""
        if path.parent == self.folder and path.name in self._staged:
            return self._staged[path.name]
        return path

    def sha256(self, path: Path) -> str:
        """The SHA-256 of the content `path` (a file of the folder) will have after the
        commit: of its temporary file if it is staged (hashed once, whichever thread asks
        first: a staged file is not written again once its writer is done), else of `path`
        as it is."""
        current = self.current(path)
        if current is path:
            return file_sha256(path)
        digest = self._digests.get(current)
        if digest is None:
            digest = self._digests[current] = file_sha256(current)
        return digest

    @property
    def staged(self) -> tuple[str, ...]:
        """The names staged so far, in order."""
        return tuple(self._staged)

    def commit(self, *, last: str | None = None, stale: Collection[str] = ()) -> None:
        """Put every staged file in place: `last` (default: the last staged) last, after
        removing the files named in `stale` that are present and not staged."""
        if self._committed:
            raise RuntimeError("RunFolderTransaction: already committed")
        names = list(self._staged)
        if not names:
            self._committed = True
            return
        if last is not None:
            names.remove(last)
            names.append(last)
        for temporary in self._staged.values():
            fd = os.open(temporary, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        renames = [(self._staged[n].name, n) for n in names]
        remove = sorted(n for n in stale if n not in self._staged and (self.folder / n).exists())
        crash = os.environ.get(_CRASH_ENV)
        crash_after = int(crash) if crash else None
        fd, tmp = tempfile.mkstemp(prefix=f"{JOURNAL}.", suffix=".tmp", dir=self.folder)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump({"renames": renames, "remove": remove}, fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.folder / JOURNAL)  # the commit point
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self._committed = True
        if crash_after is not None and crash_after <= 1:
            os._exit(99)
        with _signals_held():
            _apply(self.folder, renames, remove, crash_after=crash_after, done=1)


def write_files(
    folder: str | os.PathLike[str], files: Mapping[str, bytes | Callable[[Path], object]], command: str
) -> list[Path]:
    """Write `files` (name: bytes, or a function writing the file at the path it is given)
    into the existing folder `folder` through one transaction, the last one last.

    Returns the path of each file. A failure names the file, never its temporary name.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     paths = write_files(tmp, {"a.txt": b"a", "b.txt": lambda p: p.write_text("b")}, "example")
    ...     [p.read_text() for p in paths], sorted(p.name for p in Path(tmp).iterdir())
    (['a', 'b'], ['a.txt', 'b.txt'])
    """
    root = Path(folder)
    with RunFolderTransaction(root, command) as txn:
        for name, content in files.items():
            part = txn.stage(name)
            try:
                if isinstance(content, bytes):
                    part.write_bytes(content)
                else:
                    content(part)
            except OSError as exc:
                if exc.errno is None:
                    raise
                raise OSError(exc.errno, exc.strerror, str(root / name)) from None
        txn.commit()
    return [root / name for name in files]


# -- jobs beside a transaction ------------------------------------------------------------

# Whether jobs run in another thread beside the block that stages the rest (False: one after
# the other, as the tests compare; the files are the same bytes either way).
_WRITE_ALONGSIDE = True


@contextmanager
def alongside(job: Callable[[threading.Event], _T]) -> Iterator[Future[_T]]:
    """Run ``job(stop)`` in another thread while the block runs; its result (or error) is
    the future's. Leaving the block waits for the job; if the block failed, `stop` is set
    first, for the job to end at its next step: nothing the job stages outlives the
    transaction. Without ``_WRITE_ALONGSIDE`` the job runs here, after the block."""
    stop = threading.Event()
    if not _WRITE_ALONGSIDE:
        done: Future[_T] = Future()
        yield done
        done.set_result(job(stop))  # after the block: what it hands the job is there
        return
    with _Interrupts(stop) as interrupts:
        pool = ThreadPoolExecutor(1, thread_name_prefix="simkit-write")
        future: Future[_T] | None = None
        try:
            # Until the pool knows its thread (and so waits for it), an interrupt waits.
            with interrupts.deferred():
                future = pool.submit(job, stop)
            yield future
        except BaseException:
            stop.set()
            raise
        finally:
            # Wait for the job on its future, not by joining its thread: a join cut short by
            # a signal can take a thread still running for ended (Python 3.11's
            # Thread._wait_for_tstate_lock), and the clean-up would then run beside it.
            try:
                if future is not None:
                    wait([future])
            except BaseException:
                stop.set()
                if future is not None:
                    wait([future])  # only the first interrupt raises (_Interrupts)
                raise
            finally:
                pool.shutdown(wait=True)  # its job is done: the thread only ends


class Handoff:
    """Values handed from this thread to the writer, one at a time and in order; the writer's
    :meth:`take` gives up when `stop` is set (the block it runs beside failed)."""

    def __init__(self) -> None:
        self._values: queue.Queue[Any] = queue.Queue()

    def put(self, value: Any) -> None:
        self._values.put(value)

    def take(self, stop: threading.Event) -> Any:
        """The next value, or None once `stop` is set."""
        while not stop.is_set():
            with contextlib.suppress(queue.Empty):
                return self._values.get(timeout=0.05)
        return None


_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class _Interrupts:
    """While open (in the main thread), SIGINT, SIGTERM and SIGHUP set `stop`, and only the
    first is handled as before (raising KeyboardInterrupt, or what its handler raises): the
    clean-up it starts, which waits for another thread to stop, is not cut short by the next.
    Inside :meth:`deferred`, the first is handled on leaving."""

    def __init__(self, stop: threading.Event) -> None:
        self._stop = stop
        self._main = threading.current_thread() is threading.main_thread()
        self._previous = {int(s): signal.getsignal(s) for s in _SIGNALS} if self._main else {}
        self._handled = False
        self._deferring = False
        self._pending: tuple[int, FrameType | None] | None = None

    def __enter__(self) -> _Interrupts:
        for signum, handler in self._previous.items():
            if callable(handler):
                signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            if callable(handler):
                signal.signal(signum, handler)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self._stop.set()
        if self._deferring:
            self._pending = self._pending or (signum, frame)
        elif not self._handled:
            self._handled = True
            handler = self._previous[signum]
            if callable(handler):
                handler(signum, frame)

    @contextmanager
    def deferred(self) -> Iterator[None]:
        self._deferring = True
        try:
            yield
        finally:
            self._deferring = False
            if self._pending is not None:
                self._handle(*self._pending)
