"""The store's one writer: a thread that owns the only write connection and runs each
job as one BEGIN IMMEDIATE ... COMMIT (datasette's pattern), and how connections open.
"""

from __future__ import annotations

import contextlib
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from sqlite_utils import Database

from fodns.errors import FodnsError, StoreUnavailable
from fodns.logs import get_logger
from fodns.migrations import migrate

T = TypeVar("T")
log = get_logger()
# How long a write waits for another process holding the write lock (a second
# fodns on the same file, say) before giving up with "database is locked".
BUSY_TIMEOUT = 10.0
# Test-only, never set in service: a file whose text is "<before|after> <seq>" makes the
# writer thread stop for good in the commit of the transaction that appends event <seq>,
# before its COMMIT or after it (but before its caller hears of it), so a test can
# SIGKILL fodns with that transaction in flight (tests/test_store.py, test_groups_api.py).
# Unset, it costs one comparison per write.
STALL_FILE_FOR_TESTS = os.environ.get("FODNS_TEST_STALL_COMMIT")


@dataclass
class WriteHealth:
    """How the store's writes are going, for /healthz: a write that failed in the
    database (disk full, read-only, I/O error) makes `ok` false until one succeeds.
    A write refused by the rules of groups is not a failure of the store."""

    ok: bool = True
    error: str | None = None
    last_success: float | None = None  # time.time() of the last committed write
    failures: int = 0


_Job = tuple[Callable[[Database], Any], Future[Any]]


@dataclass
class _Call:
    """A function to run on the writer's thread (Writer.call)."""

    function: Callable[[], Any]
    future: Future[Any]

    def run(self) -> None:
        if not self.future.set_running_or_notify_cancel():
            return
        try:
            result = self.function()
        except BaseException as exc:  # its caller waits on the future: it must hear
            self.future.set_exception(exc)
        else:
            self.future.set_result(result)


class Writer:
    """The one thread that owns the write connection; each job is one committed transaction."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._jobs: queue.SimpleQueue[_Job | _Call | None]
        self._jobs = queue.SimpleQueue()
        self._db: Database | None = None  # the write connection, used on its thread only
        self._lock = threading.Lock()
        self._closed = False
        self.migrations_applied: list[int] = []
        self.health = WriteHealth()
        # Called on this thread with each job's result right after its COMMIT, before
        # its caller hears of it: in commit order (see Store.on_commit).
        self.after_commit: Callable[[Any], None] | None = None
        opened: Future[None] = Future()
        self._thread = threading.Thread(
            target=self._run, args=(path, opened), name="fodns-store-writer", daemon=True
        )
        self._thread.start()
        opened.result()  # raises whatever kept the database from opening

    def run(self, job: Callable[[Database], T]) -> T:
        """Run `job` in a write transaction and return its result once committed."""
        future: Future[T] = Future()
        if threading.current_thread() is self._thread:
            # Called by a `call` running on this thread: commit here and now (queueing
            # would wait for this very thread).
            self._commit(job, future)
        else:
            self._put((job, future))
        try:
            return future.result()
        except sqlite3.Error as exc:
            # The database failed, not the request: say so (503), nothing was committed.
            raise StoreUnavailable(f"the database did not take the change: {exc}") from exc

    def call(self, function: Callable[[], T]) -> Future[T]:
        """Run `function` on this thread, in turn with the jobs; its result or error
        comes in the future. For a store write whose caller is an event loop: its
        checks and its job run here, and the loop hears once, with no thread of a
        pool between (each hand-over between threads waits for a CPU)."""
        future: Future[T] = Future()
        self._put(_Call(function, future))
        return future

    def _put(self, item: _Job | _Call) -> None:
        with self._lock:  # so no job is queued behind the stop sentinel
            if self._closed:
                raise FodnsError("the store is closed")
            self._jobs.put(item)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._jobs.put(None)
        self._thread.join()

    def _run(self, path: Path, opened: Future[None]) -> None:
        db: Database | None
        try:
            try:
                db = connect(path, writer=True)
            except sqlite3.Error as exc:
                # Not a database SQLite can open (a folder, a file it cannot read, a
                # compressed backup restored as it is): one line at start-up, no trace.
                raise FodnsError(f"{path}: cannot open the database: {exc}") from exc
            self.migrations_applied = migrate(db)
        except BaseException as exc:
            self._closed = True
            opened.set_exception(exc)
            return
        opened.set_result(None)
        self._db = db
        try:
            while (item := self._jobs.get()) is not None:
                if isinstance(item, _Call):
                    item.run()
                else:
                    self._commit(*item)
        finally:
            if self._db is not None:
                self._db.close()

    def _commit(self, job: Callable[[Database], Any], future: Future[Any]) -> None:
        """One job on this thread's connection (opened again if it was dropped)."""
        if self._db is None:
            self._db = self._reconnect(future)
            if self._db is None:
                return
        if not commit(self._db, job, future, self.health, self.after_commit):
            # The transaction could not even be rolled back: the connection's
            # state is unknown, so it is replaced before the next job rather
            # than letting this thread end and every later write hang.
            log.error("store_connection_reset", path=str(self._path))
            with contextlib.suppress(Exception):
                self._db.close()
            self._db = None

    def _reconnect(self, future: Future[Any]) -> Database | None:
        try:
            return connect(self._path, writer=True)
        except Exception as exc:
            _failed(self.health, exc)
            future.set_exception(FodnsError(f"the database cannot be opened for writing: {exc}"))
            return None


def commit(
    db: Database,
    job: Callable[[Database], Any],
    future: Future[Any],
    health: WriteHealth | None = None,
    after_commit: Callable[[Any], None] | None = None,
) -> bool:
    """One job as BEGIN IMMEDIATE ... COMMIT; its caller gets the result or the error.
    `after_commit` sees the result once it is committed (a fault in it is logged: the
    write is durable, and its caller still gets the result). False when the
    connection can no longer be trusted (ROLLBACK itself failed)."""
    if not future.set_running_or_notify_cancel():
        return True
    try:
        db.execute("BEGIN IMMEDIATE")
        result = job(db)
        stall = None if STALL_FILE_FOR_TESTS is None else _stall_point(db, STALL_FILE_FOR_TESTS)
        if stall == "before":
            _stall_for_test(stall)
        db.execute("COMMIT")
        if stall == "after":
            _stall_for_test(stall)
    except BaseException as exc:  # the caller is blocked on the future: it must hear of it
        if health is not None and isinstance(exc, (sqlite3.Error, OSError)):
            _failed(health, exc)
        connection_usable = True
        try:
            if db.conn.in_transaction:
                db.conn.execute("ROLLBACK")
        except Exception:
            connection_usable = False
        future.set_exception(exc)
        return connection_usable
    if health is not None:
        health.ok, health.error, health.last_success = True, None, time.time()
    if after_commit is not None:
        try:
            after_commit(result)
        except Exception:
            log.exception("store_after_commit_failed")
    future.set_result(result)
    return True


def _stall_point(db: Database, trigger: str) -> str | None:
    """Where to stall this commit (see STALL_FILE_FOR_TESTS): the point the trigger file
    names if this transaction holds its event, else None."""
    try:
        point, seq = Path(trigger).read_text().split()
        holds = db.execute("SELECT 1 FROM events WHERE seq = ?", [int(seq)]).fetchone()
    except (OSError, ValueError, sqlite3.Error):
        return None
    return point if holds else None


def _stall_for_test(point: str) -> None:
    log.warning("store_commit_stalled_for_test", point=point)
    threading.Event().wait()  # until the test kills the process


def _failed(health: WriteHealth, exc: BaseException) -> None:
    health.ok, health.error = False, f"{type(exc).__name__}: {exc}"
    health.failures += 1
    log.error("store_write_failed", error=health.error)


def connect(path: Path, *, writer: bool) -> Database:
    if writer:
        create_private(path)
    # isolation_level=None: the driver opens no transactions of its own; we say BEGIN.
    # Readers may be closed by close() from another thread, hence check_same_thread.
    conn = sqlite3.connect(
        path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=writer
    )
    db = Database(conn, execute_plugins=False)
    if writer:
        mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise FodnsError(f"{path}: SQLite cannot use WAL here (journal mode {mode})")
        db.execute("PRAGMA foreign_keys = ON")
    else:
        db.execute("PRAGMA query_only = ON")
    # FULL: a commit returns only after the WAL is fsynced, so an acknowledged
    # change survives a crash of the process or the machine.
    db.execute("PRAGMA synchronous = FULL")
    return db


def create_private(path: Path) -> None:
    """Create the database file with mode 0600 if it does not exist yet. SQLite would
    create it 0644 less the umask, and gives the -wal and -shm files the database
    file's mode, so all three are private from the start. A file that exists keeps the
    mode its operator gave it. (An empty file is an empty SQLite database.)"""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    except OSError as exc:
        raise FodnsError(f"{path}: cannot create the database: {exc.strerror}") from None
    os.close(descriptor)
