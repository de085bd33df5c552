"""Single-writer, many-reader shared-memory ring of fixed-size numpy records.

The feed process writes market records into an ``mmap``-ed file (in the pod, a file on the ``/dev/shm``
``emptyDir`` both containers mount; locally a file under ``$AEGIS_HOME``); the brain process reads them. We
use a plain file and ``mmap`` rather than ``multiprocessing.shared_memory`` because the latter's resource
tracker unlinks segments it did not create (Python < 3.13) and because two containers only share a path.

The full layout and protocol, with byte offsets, are in ``docs/ring.md``. In short:

* The file starts with a 4096-byte control page (magic, layout version, dtype fingerprint, slot size,
  capacity, state, writer epoch, published sequence on its own cache line, writer heartbeat on its own cache
  line, layout name and text), then the symbol table (``symbol_capacity`` × 24-byte names), then ``capacity``
  slots.
* Sequences start at 1 and never restart while the file exists: a restarted writer continues from the
  published sequence and bumps the epoch. Slot ``seq & (capacity - 1)`` holds record ``seq``.
* Write order per record: the slot's ``seq`` word := BUSY, payload, ``seq`` word := seq, then the header's
  published sequence. The heartbeat is refreshed by every compiled write, by every 64th record written from
  Python (saving a clock read on the other 63) and by ``heartbeat()``, which a writer calls on a timer (the
  feed: every second), so its age stays bounded when the stream is slow or idle. Without the BUSY store, a
  reader copying a slot the writer is overwriting could re-read the *old* seq after copying half of the *new*
  payload and accept a torn record.
* Read validation per record: the slot's seq must equal the expected sequence before the copy and again after
  it (a seqlock). A mismatch after the copy means the writer lapped the reader mid-copy (a torn read).
* The writer never blocks and never waits for readers. A reader more than ``capacity`` behind counts the
  records it lost, resyncs to the oldest record still in the ring (or the newest, see ``on_overrun``) and
  carries on.

Memory ordering: on x86-64 (TSO) stores are not reordered with other stores and loads are not reordered with
other loads, so "payload, then seq" as seen by another core needs no fence instruction, only that the
*compiler* keeps the program order. The Python paths get that for free (every store is a separate C call); the
numba kernels put an LLVM ``fence release`` between payload and seq stores and ``fence acquire`` between the
reader's loads, which compile to nothing on x86 but stop LLVM from reordering or merging the stores, and which
would emit the barriers a weakly ordered CPU (ARM) needs. The Python-level loads and stores (the per-record
paths, and the published-sequence load before a batch read) rely on x86-64 ordering: AEGIS targets x86-64
nodes, and an ARM port would move those into kernels with the same fences.

Readers never write to the file (they can map it read-only): the writer does not need to know them, and any
number can attach. A reader's lag is visible in its own counters.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import mmap
import os
import re
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
from numba import njit, types
from numba.extending import intrinsic

from aegis.errors import AegisError

__all__ = [
    "DEFAULT_SYMBOL_CAPACITY",
    "LAYOUT_VERSION",
    "MAGIC",
    "RingBusyError",
    "RingError",
    "RingLayoutError",
    "RingNotReadyError",
    "RingReader",
    "RingWriter",
    "attach",
    "create",
    "layout_fingerprint",
    "warm_up",
]


class RingError(AegisError):
    """A ring file cannot be created, attached or used."""


class RingNotReadyError(RingError, TimeoutError):
    """The ring file did not become ready (missing or half-initialised) before the timeout."""


class RingLayoutError(RingError):
    """The ring file has a different magic, layout version, record layout or geometry than expected."""


class RingBusyError(RingError):
    """Another writer already owns the ring file."""


MAGIC: Final = b"AEGISRNG"
LAYOUT_VERSION: Final = 1
CONTROL_PAGE: Final = 4096
SYMBOL_NAME_SIZE: Final = 24
DEFAULT_SYMBOL_CAPACITY: Final = 1024

# Control page byte offsets (see docs/ring.md). u64 fields are accessed as words (offset // 8).
_OFF_MAGIC = 0
_OFF_VERSION = 8  # u4
_OFF_SLOT_SIZE = 12  # u4
_OFF_CAPACITY = 16  # u8
_OFF_FINGERPRINT = 24  # u8
_OFF_HEADER_SIZE = 32  # u8: byte offset of slot 0
_OFF_SYMBOL_CAPACITY = 40  # u4
_OFF_SYMBOL_NAME_SIZE = 44  # u4
_OFF_STATE = 48  # u8: the "initialised" flag, written last
_OFF_CREATED_NS = 56  # i8: wall clock at creation
_OFF_EPOCH = 64  # cache line 1: writer identity
_OFF_EPOCH_START = 72
_OFF_WRITER_PID = 80
_OFF_SYMBOL_COUNT = 88
_OFF_PUBLISHED = 128  # cache line 2: the published sequence alone
_OFF_HEARTBEAT = 192  # cache line 3: writer heartbeat, CLOCK_MONOTONIC ns
_OFF_LAYOUT_NAME = 256  # 64 bytes
_LAYOUT_NAME_SIZE = 64
_OFF_LAYOUT_TEXT = 1024  # up to 3072 bytes, NUL padded
_LAYOUT_TEXT_SIZE = CONTROL_PAGE - _OFF_LAYOUT_TEXT

_W_STATE = _OFF_STATE // 8
_W_EPOCH = _OFF_EPOCH // 8
_W_EPOCH_START = _OFF_EPOCH_START // 8
_W_WRITER_PID = _OFF_WRITER_PID // 8
_W_SYMBOL_COUNT = _OFF_SYMBOL_COUNT // 8
_W_PUBLISHED = _OFF_PUBLISHED // 8
_W_HEARTBEAT = _OFF_HEARTBEAT // 8

STATE_INITIALISING: Final = 0  # a zero-filled file reads as "not initialised"
STATE_READY: Final = 1
STATE_RETIRED: Final = 2  # the writer replaced this file at the same path: readers drain it, then re-attach

_MADV_POPULATE_READ = getattr(mmap, "MADV_POPULATE_READ", 22)  # Linux 5.14+; Python < 3.13 lacks the names
_MADV_POPULATE_WRITE = getattr(mmap, "MADV_POPULATE_WRITE", 23)

_BUSY: Final = 0xFFFF_FFFF_FFFF_FFFF  # slot seq while the writer is storing its payload
_HEARTBEAT_MASK: Final = 63  # the Python per-record writes refresh the heartbeat on every 64th sequence
_monotonic_ns_py = time.monotonic_ns

Start = Literal["oldest", "next"]
OnOverrun = Literal["oldest", "newest"]


# ------------------------------------------------------------------------------------------------------------
# Layout


def layout_text(dtype: np.dtype) -> str:
    """Return the canonical one-line description of a record dtype (what the fingerprint hashes)."""
    parts = []
    for name in dtype.names or ():
        field_dtype, offset = dtype.fields[name][:2]
        shape = "" if field_dtype.shape == () else str(list(field_dtype.shape))
        base = field_dtype.base if field_dtype.shape else field_dtype
        parts.append(f"{name}:{base.str}{shape}@{offset}")
    return f"{','.join(parts)};itemsize={dtype.itemsize}"


def layout_fingerprint(dtype: np.dtype, layout_name: str = "") -> int:
    """Return the 64-bit fingerprint of a record layout (layout version, name and dtype)."""
    text = f"v{LAYOUT_VERSION}|{layout_name}|{layout_text(dtype)}"
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def _check_dtype(dtype: np.dtype) -> np.dtype:
    dtype = np.dtype(dtype)
    if dtype.names is None or dtype.names[0] != "seq" or dtype.fields["seq"][1] != 0:
        raise RingLayoutError(f"a ring record dtype must start with a 'seq' field at offset 0, got {dtype}")
    if dtype.fields["seq"][0] != np.dtype("<u8"):
        raise RingLayoutError(f"the 'seq' field must be little-endian uint64 ('<u8'), got {dtype['seq']}")
    if dtype.itemsize % 8 or dtype.itemsize < 16:
        raise RingLayoutError(f"a ring record must be a multiple of 8 bytes and at least 16, got {dtype.itemsize}")
    if dtype.hasobject:
        raise RingLayoutError("a ring record cannot hold Python objects")
    return dtype


def _geometry(slot_size: int, capacity: int, symbol_capacity: int) -> tuple[int, int]:
    symbols_bytes = symbol_capacity * SYMBOL_NAME_SIZE
    header_size = CONTROL_PAGE + (symbols_bytes + CONTROL_PAGE - 1) // CONTROL_PAGE * CONTROL_PAGE
    return header_size, header_size + capacity * slot_size


def _describe(name: str, fingerprint: int, text: str) -> str:
    return f"{name or '<unnamed>'} (fingerprint {fingerprint:016x}: {text})"


# ------------------------------------------------------------------------------------------------------------
# Compiled kernels. Slots are viewed as a 2-D uint64 array (capacity × words per slot), records likewise; word
# 0 of a slot is its seq.


@intrinsic
def _fence_release(typingctx):
    """Keep every earlier load/store before every later store (compiler barrier on x86, dmb on ARM)."""

    def codegen(context, builder, signature, args):
        builder.fence("release")
        return context.get_dummy_value()

    return types.void(), codegen


@intrinsic
def _fence_acquire(typingctx):
    """Keep every later load/store after every earlier load."""

    def codegen(context, builder, signature, args):
        builder.fence("acquire")
        return context.get_dummy_value()

    return types.void(), codegen


_clock_gettime = types.ExternalFunction("clock_gettime", types.int32(types.int32, types.CPointer(types.int64)))
_CLOCK_MONOTONIC = 1


@njit(cache=True, inline="always")
def _monotonic_ns(timespec):
    _clock_gettime(_CLOCK_MONOTONIC, timespec.ctypes)
    return timespec[0] * 1_000_000_000 + timespec[1]


@njit(cache=True, inline="always")
def _store(slots, mask, seq, record):
    slot = slots[seq & mask]
    slot[0] = _BUSY
    _fence_release()
    for w in range(1, slot.shape[0]):
        slot[w] = record[w]
    _fence_release()
    slot[0] = np.uint64(seq)


@njit(cache=True)
def _write_run(slots, header, mask, first_seq, records, now_ns):
    """Store ``records`` as ``first_seq, first_seq+1, …``; publish in chunks of at most ``capacity``."""
    capacity = mask + 1
    n = records.shape[0]
    start = 0
    while start < n:
        stop = min(n, start + capacity)
        for i in range(start, stop):
            _store(slots, mask, first_seq + i, records[i])
        _fence_release()
        header[_W_PUBLISHED] = np.uint64(first_seq + stop - 1)
        header[_W_HEARTBEAT] = np.uint64(now_ns)
        start = stop


@njit(cache=True)
def _write_each(slots, header, mask, first_seq, records, stamp_word, timespec):
    """Store and publish each record on its own, stamping CLOCK_MONOTONIC ns into ``stamp_word`` if >= 0."""
    for i in range(records.shape[0]):
        now = _monotonic_ns(timespec)
        if stamp_word >= 0:
            records[i, stamp_word] = np.uint64(now)
        _store(slots, mask, first_seq + i, records[i])
        _fence_release()
        header[_W_PUBLISHED] = np.uint64(first_seq + i)
        header[_W_HEARTBEAT] = np.uint64(now)


@njit(cache=True)
def _read_run(slots, mask, cursor, out, n):
    """Copy records ``cursor … cursor+n-1`` (all published) into ``out``; return how many validated.

    Every slot was complete when the published sequence covering it was loaded, so only the re-read after the
    copy is needed: a slot whose seq changed was being overwritten (lapped) while we copied it.
    """
    for i in range(n):
        src = slots[(cursor + i) & mask]
        dst = out[i]
        for w in range(src.shape[0]):
            dst[w] = src[w]
    _fence_acquire()
    for i in range(n):
        if slots[(cursor + i) & mask][0] != np.uint64(cursor + i):
            return i
    return n


@njit(cache=True)
def _read_each(slots, mask, cursor, out, recv_ns, timespec):
    """Take records one at a time while their slots hold the expected seq; return (count, status).

    status 0: stopped at an unpublished record or a full ``out``; 1: a slot held a newer seq or BUSY where we
    expected ours (lapped, or the writer is storing it right now); 2: torn (the seq changed during the copy).
    """
    n = out.shape[0]
    stamp = recv_ns.shape[0] > 0
    for i in range(n):
        seq = cursor + i
        expected = np.uint64(seq)
        src = slots[seq & mask]
        first = src[0]
        if first != expected:
            if first > expected:  # includes BUSY
                return i, 1
            return i, 0
        _fence_acquire()
        dst = out[i]
        for w in range(1, src.shape[0]):
            dst[w] = src[w]
        _fence_acquire()
        if src[0] != expected:
            return i, 2
        dst[0] = expected
        if stamp:
            recv_ns[i] = _monotonic_ns(timespec)
    return n, 0


# ------------------------------------------------------------------------------------------------------------
# Shared mapping


class _Mapping:
    """An open ring file: the mmap and the views both sides use."""

    def __init__(self, fd: int, size: int, dtype: np.dtype, *, writable: bool) -> None:
        access = mmap.ACCESS_WRITE if writable else mmap.ACCESS_READ
        self.mm = mmap.mmap(fd, size, access=access)
        try:  # map every page now so the first lap does not pay page faults on the hot path
            self.mm.madvise(_MADV_POPULATE_WRITE if writable else _MADV_POPULATE_READ)
        except (OSError, ValueError):  # kernels before 5.14: pages fault in on first touch instead
            pass
        self.size = size
        self.buffer = memoryview(self.mm)
        self.words = self.buffer.cast("Q")
        header = np.frombuffer(self.mm, dtype=np.uint64, count=CONTROL_PAGE // 8)
        self.header = header
        self.slot_size = int.from_bytes(self.mm[_OFF_SLOT_SIZE : _OFF_SLOT_SIZE + 4], "little")
        self.capacity = int(header[_OFF_CAPACITY // 8])
        self.header_size = int(header[_OFF_HEADER_SIZE // 8])
        self.symbol_capacity = int.from_bytes(self.mm[_OFF_SYMBOL_CAPACITY : _OFF_SYMBOL_CAPACITY + 4], "little")
        self.slot_words = self.slot_size // 8
        self.slots = np.frombuffer(
            self.mm, dtype=np.uint64, count=self.capacity * self.slot_words, offset=self.header_size
        ).reshape(self.capacity, self.slot_words)
        self.records = np.frombuffer(self.mm, dtype=dtype, count=self.capacity, offset=self.header_size)

    def close(self) -> None:
        del self.header, self.slots, self.records
        self.words.release()
        self.buffer.release()
        try:
            self.mm.close()
        except BufferError:  # a caller still holds a view into the ring; the mapping goes with the last view
            pass


def _read_control(mm: mmap.mmap | bytes) -> dict[str, object]:
    def u4(off: int) -> int:
        return int.from_bytes(mm[off : off + 4], "little")

    def u8(off: int) -> int:
        return int.from_bytes(mm[off : off + 8], "little")

    def text(off: int, size: int) -> str:
        return bytes(mm[off : off + size]).split(b"\0", 1)[0].decode("utf-8", "replace")

    return {
        "magic": bytes(mm[_OFF_MAGIC : _OFF_MAGIC + 8]),
        "version": u4(_OFF_VERSION),
        "slot_size": u4(_OFF_SLOT_SIZE),
        "capacity": u8(_OFF_CAPACITY),
        "fingerprint": u8(_OFF_FINGERPRINT),
        "header_size": u8(_OFF_HEADER_SIZE),
        "symbol_capacity": u4(_OFF_SYMBOL_CAPACITY),
        "state": u8(_OFF_STATE),
        "epoch": u8(_OFF_EPOCH),
        "published": u8(_OFF_PUBLISHED),
        "layout_name": text(_OFF_LAYOUT_NAME, _LAYOUT_NAME_SIZE),
        "layout_text": text(_OFF_LAYOUT_TEXT, _LAYOUT_TEXT_SIZE),
    }


# ------------------------------------------------------------------------------------------------------------
# Writer


class RingWriter:
    """The one writer of a ring file.

    Opening a writer on an existing ring with the same layout and geometry re-initialises it in place: the
    sequence continues, the symbol table is kept, the epoch is bumped so readers notice the restart. Any other
    existing ring file (different layout or geometry, or half-initialised) is replaced by a new file at the
    same path (readers of the old one drain it and re-attach). A file at the path that is not a ring is
    refused. A second live writer on the same path is refused (``RingBusyError``; an advisory lock on
    ``<path>.lock``).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        dtype: np.dtype,
        capacity: int,
        *,
        layout_name: str = "",
        symbol_capacity: int = DEFAULT_SYMBOL_CAPACITY,
    ) -> None:
        self.path = Path(path)
        self.dtype = _check_dtype(dtype)
        if capacity < 2 or capacity & (capacity - 1):
            raise ValueError(f"ring capacity must be a power of two >= 2, got {capacity}")
        if len(layout_name.encode()) >= _LAYOUT_NAME_SIZE:
            raise ValueError(f"layout name longer than {_LAYOUT_NAME_SIZE - 1} bytes: {layout_name!r}")
        self.capacity = capacity
        self.layout_name = layout_name
        self.fingerprint = layout_fingerprint(self.dtype, layout_name)
        self._symbol_capacity = symbol_capacity
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_fd = self._take_lock()
        try:
            self._map = self._open_or_create()
        except BaseException:
            os.close(self._lock_fd)
            raise
        self._bind()

    # -- lifecycle -------------------------------------------------------------------------------------------

    def _take_lock(self) -> int:
        lock_path = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EACCES):
                raise RingBusyError(f"another writer holds {lock_path}") from None
            raise
        return fd

    def _open_or_create(self) -> _Mapping:
        header_size, size = _geometry(self.dtype.itemsize, self.capacity, self._symbol_capacity)
        previous_epoch = 0
        try:
            fd = os.open(self.path, os.O_RDWR)
        except FileNotFoundError:
            return self._create_file(header_size, size, epoch=1)
        try:
            existing = os.fstat(fd).st_size
            if existing >= CONTROL_PAGE:
                with mmap.mmap(fd, CONTROL_PAGE, access=mmap.ACCESS_READ) as mm:
                    control = _read_control(mm)
                if control["magic"] not in (MAGIC, bytes(8)):  # all zero: a ring that was never initialised
                    raise RingLayoutError(
                        f"{self.path} exists and is not an AEGIS ring (magic {control['magic']!r}); "
                        "refusing to overwrite it"
                    )
                previous_epoch = int(control["epoch"])  # type: ignore[arg-type]
                same = (
                    control["version"] == LAYOUT_VERSION
                    and control["fingerprint"] == self.fingerprint
                    and control["slot_size"] == self.dtype.itemsize
                    and control["capacity"] == self.capacity
                    and control["header_size"] == header_size
                    and control["symbol_capacity"] == self._symbol_capacity
                    and control["state"] == STATE_READY
                    and existing == size
                )
                if same:
                    mapping = _Mapping(fd, size, self.dtype, writable=True)
                    self._reinitialise(mapping, previous_epoch + 1)
                    return mapping
            elif existing > 0:
                with open(self.path, "rb") as f:
                    head = f.read(8)
                if head.strip(b"\0") and not MAGIC.startswith(head[: len(MAGIC)]):
                    raise RingLayoutError(f"{self.path} exists and is not an AEGIS ring; refusing to overwrite it")
        finally:
            os.close(fd)
        # Incompatible or half-initialised: build a fresh file beside it, swap it in atomically.
        return self._create_file(header_size, size, epoch=previous_epoch + 1, retire_old=True)

    def _create_file(self, header_size: int, size: int, *, epoch: int, retire_old: bool = False) -> _Mapping:
        tmp = self.path.with_name(f"{self.path.name}.tmp.{os.getpid()}")
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.ftruncate(fd, size)
            try:  # reserve the memory now: a full /dev/shm then fails here, not with SIGBUS mid-stream
                os.posix_fallocate(fd, 0, size)
            except OSError as exc:
                if exc.errno == errno.ENOSPC:
                    raise RingError(f"no space for a {size}-byte ring at {self.path}: {exc}") from None
                if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                    raise
            with mmap.mmap(fd, CONTROL_PAGE) as mm:
                mm[_OFF_MAGIC : _OFF_MAGIC + 8] = MAGIC
                mm[_OFF_VERSION : _OFF_VERSION + 4] = LAYOUT_VERSION.to_bytes(4, "little")
                mm[_OFF_SLOT_SIZE : _OFF_SLOT_SIZE + 4] = self.dtype.itemsize.to_bytes(4, "little")
                mm[_OFF_CAPACITY : _OFF_CAPACITY + 8] = self.capacity.to_bytes(8, "little")
                mm[_OFF_FINGERPRINT : _OFF_FINGERPRINT + 8] = self.fingerprint.to_bytes(8, "little")
                mm[_OFF_HEADER_SIZE : _OFF_HEADER_SIZE + 8] = header_size.to_bytes(8, "little")
                mm[_OFF_SYMBOL_CAPACITY : _OFF_SYMBOL_CAPACITY + 4] = self._symbol_capacity.to_bytes(4, "little")
                mm[_OFF_SYMBOL_NAME_SIZE : _OFF_SYMBOL_NAME_SIZE + 4] = SYMBOL_NAME_SIZE.to_bytes(4, "little")
                mm[_OFF_CREATED_NS : _OFF_CREATED_NS + 8] = time.time_ns().to_bytes(8, "little")
                name = self.layout_name.encode()
                mm[_OFF_LAYOUT_NAME : _OFF_LAYOUT_NAME + len(name)] = name
                text = layout_text(self.dtype).encode()[: _LAYOUT_TEXT_SIZE - 1]
                mm[_OFF_LAYOUT_TEXT : _OFF_LAYOUT_TEXT + len(text)] = text
            mapping = _Mapping(fd, size, self.dtype, writable=True)
            self._reinitialise(mapping, epoch)
            if retire_old:
                _mark_retired(self.path)
            os.replace(tmp, self.path)  # readers only ever see a complete file at the path
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        finally:
            os.close(fd)
        return mapping

    def _reinitialise(self, mapping: _Mapping, epoch: int) -> None:
        words = mapping.words
        words[_W_STATE] = STATE_INITIALISING
        words[_W_EPOCH] = epoch
        words[_W_EPOCH_START] = words[_W_PUBLISHED] + 1
        words[_W_WRITER_PID] = os.getpid()
        words[_W_HEARTBEAT] = time.monotonic_ns()
        words[_W_STATE] = STATE_READY  # last: readers attach only to a READY file

    def _bind(self) -> None:
        m = self._map
        self._words = m.words
        self._mm = m.mm
        self._mask = self.capacity - 1
        self._slot_size = self.dtype.itemsize
        self._payload_size = self.dtype.itemsize - 8
        self._slot_words = m.slot_words
        self._slot_base = m.header_size
        self._next_seq = int(m.words[_W_PUBLISHED]) + 1
        self._timespec = np.zeros(2, dtype=np.int64)
        self._symbols: dict[str, int] = {}
        count = int(m.words[_W_SYMBOL_COUNT])
        for symbol_id in range(count):
            self._symbols[_symbol_name(m.mm, symbol_id)] = symbol_id

    def close(self) -> None:
        """Unmap the file and release the writer lock; the file stays READY for readers to drain."""
        if self._lock_fd < 0:
            return
        self.heartbeat()
        del self._words, self._mm
        self._map.close()
        os.close(self._lock_fd)
        self._lock_fd = -1

    def retire(self) -> None:
        """Mark the file retired (readers drain it, then re-attach to the path) and close the writer."""
        self._words[_W_STATE] = STATE_RETIRED
        self.close()

    def __enter__(self) -> RingWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- properties ------------------------------------------------------------------------------------------

    @property
    def epoch(self) -> int:
        """The writer epoch (bumped on every writer start on this file)."""
        return int(self._words[_W_EPOCH])

    @property
    def published(self) -> int:
        """The last published sequence (0 when nothing was ever published)."""
        return self._next_seq - 1

    # -- writing ---------------------------------------------------------------------------------------------

    def write_bytes(self, record: bytes | bytearray | memoryview) -> int:
        """Publish one record given as ``itemsize`` bytes (``seq`` bytes ignored); return its sequence.

        The per-record Python path for records that already exist as bytes: three word stores and one slice
        copy into the mapping, no numpy object. Records built from fields go faster through
        :meth:`packed_writer`, which skips the intermediate ``bytes``.
        """
        seq = self._next_seq
        offset = self._slot_base + (seq & self._mask) * self._slot_size
        word = offset >> 3
        words = self._words
        words[word] = _BUSY
        try:
            self._mm[offset + 8 : offset + self._slot_size] = record[8:]
        except (ValueError, TypeError, IndexError):
            # The size check runs before any byte is copied, so the slot still holds its previous record.
            words[word] = seq - self.capacity if seq > self.capacity else 0
            raise ValueError(
                f"a record for this ring is {self._slot_size} bytes, got {_length(record)} ({type(record).__name__})"
            ) from None
        words[word] = seq  # after the payload: x86 keeps store order, and each store is its own C call
        words[_W_PUBLISHED] = seq
        self._next_seq = seq + 1
        if not seq & _HEARTBEAT_MASK:
            words[_W_HEARTBEAT] = _monotonic_ns_py()
        return seq

    def packed_writer(self, packer: struct.Struct) -> Callable[..., int]:
        """Return ``write(*values) -> seq``: publish one record packed by ``packer`` straight into its slot.

        ``packer`` describes the record *after* its ``seq`` word (``packer.size == itemsize - 8``; pad bytes
        ``x`` are written as zeros), so the record never exists as a Python ``bytes``: the returned function
        stores BUSY, makes one ``packer.pack_into`` into the mapping, then stores the seq and publishes, like
        :meth:`write_bytes`. It is the per-record fast path of the feed (``records.*_FIELDS``) and shares the
        sequence with every other write method of this writer.

        The function is generated with one named parameter per packed value (as ``collections.namedtuple``
        generates its ``__new__``): forwarding ``*values`` through a Python call costs more than the pack
        itself. A value ``packer`` refuses raises ``struct.error`` and may leave the slot partly written, so
        the slot then stays BUSY: no reader returns it, and the next write reuses the sequence.
        """
        if packer.size != self._payload_size:
            raise ValueError(
                f"packer {packer.format!r} packs {packer.size} bytes; records of this ring have "
                f"{self._payload_size} bytes after the seq word"
            )
        params = ", ".join(f"v{i}" for i in range(_struct_items(packer.format)))
        namespace: dict[str, Any] = {}
        exec(_PACKED_WRITER_SOURCE.format(params=params), namespace)
        return namespace["make"](  # type: ignore[no-any-return]
            self,
            self._words,
            self._mm,
            packer.pack_into,
            self._mask,
            self._slot_size,
            self._slot_base,
            _monotonic_ns_py,
        )

    def write(self, record: np.void | np.ndarray | bytes | bytearray | memoryview) -> int:
        """Publish one record (``np.void`` of the ring dtype, 1-element array, or bytes); return its seq."""
        if isinstance(record, bytes | bytearray | memoryview):
            return self.write_bytes(record)
        if record.dtype != self.dtype:
            raise ValueError(f"record dtype {record.dtype} is not the ring dtype {self.dtype}")
        return self.write_bytes(record.tobytes())

    def try_write(self, **fields: object) -> bool:
        """Publish one record built from field values (unset fields are zero); True: it never waits.

        Convenient but slow (a numpy record per call); hot paths use ``write_bytes`` or ``write_batch``.
        """
        record = np.zeros((), dtype=self.dtype)
        for name, value in fields.items():
            record[name] = value
        self.write_bytes(record.tobytes())
        return True

    def write_batch(self, records: np.ndarray) -> int:
        """Publish an array of records (the ring dtype) in one compiled pass; return the last sequence."""
        records = self._as_words(records)
        n = records.shape[0]
        if n == 0:
            return self._next_seq - 1
        first = self._next_seq
        _write_run(self._map.slots, self._map.header, self._mask, first, records, time.monotonic_ns())
        self._next_seq = first + n
        return first + n - 1

    def write_each(self, records: np.ndarray, stamp_field: str | None = None) -> int:
        """Publish each record of an array on its own (own seq, published one by one) from a compiled loop.

        With ``stamp_field`` (an 8-byte integer field), store CLOCK_MONOTONIC ns into it just before each
        record is published (the array is modified in place). Return the last sequence.
        """
        stamp_word = -1
        if stamp_field is not None:
            field_dtype, offset = self.dtype.fields[stamp_field][:2]
            if field_dtype.itemsize != 8 or offset % 8 or field_dtype.kind not in "iu":
                raise ValueError(f"stamp field {stamp_field!r} must be an aligned 8-byte integer")
            stamp_word = offset // 8
        words = self._as_words(records)
        first = self._next_seq
        _write_each(self._map.slots, self._map.header, self._mask, first, words, stamp_word, self._timespec)
        self._next_seq = first + words.shape[0]
        return self._next_seq - 1

    def _as_words(self, records: np.ndarray) -> np.ndarray:
        if records.dtype != self.dtype:
            raise ValueError(f"records dtype {records.dtype} is not the ring dtype {self.dtype}")
        if not records.flags.c_contiguous:
            records = np.ascontiguousarray(records)
        return records.reshape(-1).view(np.uint64).reshape(-1, self._slot_words)

    def retained(self, where: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
        """Return a copy of the records still in the ring, earlier writers' included, oldest first.

        A writer that re-opened a ring reads back what its predecessors published this way (the feed seeds its
        kline gate from it). ``where`` maps the slot array (ring dtype, slot order) to a boolean mask of the
        records wanted. A slot is kept only when its seq word is a published sequence still in the ring that
        belongs to that slot: a slot left BUSY by a writer killed mid-write is skipped.
        """
        published = self._next_seq - 1
        seqs = self._map.slots[:, 0]
        keep = (seqs >= max(1, published - self.capacity + 1)) & (seqs <= published)
        keep &= (seqs & np.uint64(self._mask)) == np.arange(self.capacity, dtype=np.uint64)
        if where is not None:
            keep &= where(self._map.records)
        chosen = self._map.records[keep]  # boolean indexing copies
        return chosen[np.argsort(chosen["seq"], kind="stable")]

    def heartbeat(self) -> None:
        """Refresh the writer heartbeat without publishing (call it when the stream is idle)."""
        self._words[_W_HEARTBEAT] = time.monotonic_ns()

    # -- symbols ---------------------------------------------------------------------------------------------

    def add_symbol(self, name: str) -> int:
        """Return the symbol id of ``name``, adding it if new (ids are never reused within a file)."""
        symbol_id = self._symbols.get(name)
        if symbol_id is not None:
            return symbol_id
        raw = name.encode("ascii")
        if not raw or len(raw) > SYMBOL_NAME_SIZE or b"\0" in raw:
            raise ValueError(f"symbol name must be 1..{SYMBOL_NAME_SIZE} ASCII bytes: {name!r}")
        symbol_id = len(self._symbols)
        if symbol_id >= self._map.symbol_capacity:
            raise RingError(f"symbol table full ({self._map.symbol_capacity} symbols) adding {name!r}")
        offset = CONTROL_PAGE + symbol_id * SYMBOL_NAME_SIZE
        self._map.mm[offset : offset + SYMBOL_NAME_SIZE] = raw.ljust(SYMBOL_NAME_SIZE, b"\0")
        self._words[_W_SYMBOL_COUNT] = symbol_id + 1  # after the name: readers only look up ids below the count
        self._symbols[name] = symbol_id
        return symbol_id

    def symbols(self) -> dict[int, str]:
        """Return the symbol table as id → name."""
        return {symbol_id: name for name, symbol_id in self._symbols.items()}


def _mark_retired(path: Path) -> None:
    """Tell readers still mapping the ring file at ``path`` that it is being replaced."""
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return
    try:
        if os.fstat(fd).st_size >= CONTROL_PAGE and os.pread(fd, 8, _OFF_MAGIC) == MAGIC:
            os.pwrite(fd, STATE_RETIRED.to_bytes(8, "little"), _OFF_STATE)  # the page cache is the mapping
    finally:
        os.close(fd)


_PACKED_WRITER_SOURCE = f"""
def make(writer, words, mm, pack_into, mask, slot_size, slot_base, clock):
    def write({{params}}):
        seq = writer._next_seq
        offset = slot_base + (seq & mask) * slot_size
        word = offset >> 3
        words[word] = {_BUSY}
        pack_into(mm, offset + 8, {{params}})
        words[word] = seq
        words[{_W_PUBLISHED}] = seq
        writer._next_seq = seq + 1
        if not seq & {_HEARTBEAT_MASK}:
            words[{_W_HEARTBEAT}] = clock()
        return seq
    return write
"""
_FORMAT_ITEM = re.compile(r"\s*(\d*)\s*([xcbB?hHiIlLqQnNefdspP])")


def _struct_items(fmt: str) -> int:
    """How many values a ``struct`` format packs (``x`` none, ``Ns``/``Np`` one, any other code N)."""
    count = 0
    for repeat, code in _FORMAT_ITEM.findall(fmt.lstrip("@=<>!")):
        if code in "sp":
            count += 1
        elif code != "x":
            count += int(repeat or 1)
    return count


def _length(record: object) -> int | str:
    try:
        return len(record)  # type: ignore[arg-type]
    except TypeError:
        return "?"


def _symbol_name(mm: mmap.mmap, symbol_id: int) -> str:
    offset = CONTROL_PAGE + symbol_id * SYMBOL_NAME_SIZE
    return mm[offset : offset + SYMBOL_NAME_SIZE].rstrip(b"\0").decode("ascii")


# ------------------------------------------------------------------------------------------------------------
# Reader


class RingReader:
    """One reader of a ring file with its own cursor (the next sequence it will read) and loss counters.

    ``start``: ``"oldest"`` begins at the oldest record still in the ring, ``"next"`` at the first record
    published after attaching. ``on_overrun``: when the writer has lapped the reader, ``"oldest"`` resyncs to
    the oldest record still in the ring (keeps as much history as possible), ``"newest"`` to the newest
    published record (lowest latency). Either way the skipped records are added to ``records_lost``.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        dtype: np.dtype,
        *,
        layout_name: str = "",
        timeout: float = 10.0,
        start: Start = "oldest",
        on_overrun: OnOverrun = "oldest",
    ) -> None:
        self.path = Path(path)
        self.dtype = _check_dtype(dtype)
        self.layout_name = layout_name
        self.fingerprint = layout_fingerprint(self.dtype, layout_name)
        if on_overrun not in ("oldest", "newest"):
            raise ValueError(f"on_overrun must be 'oldest' or 'newest', not {on_overrun!r}")
        self._on_overrun = on_overrun
        self.records_lost = 0
        self.overruns = 0
        self.torn_reads = 0
        self.resyncs = 0
        self.epoch_changes = 0
        self._torn_at = -1
        self._next_reattach_ns = 0
        self._timespec = np.zeros(2, dtype=np.int64)
        self._no_recv = np.zeros(0, dtype=np.int64)
        self._map = _attach(self.path, self.dtype, self.fingerprint, layout_name, timeout)
        self._bind()
        published = int(self._words[_W_PUBLISHED])
        if start == "next":
            self._cursor = published + 1
        elif start == "oldest":
            self._cursor = max(1, published - self.capacity + 1)
        else:
            raise ValueError(f"start must be 'oldest' or 'next', not {start!r}")
        self._read_base = self._cursor  # records_read = cursor - _read_base: no counter to bump per record

    def _bind(self) -> None:
        m = self._map
        self._words = m.words
        self._mm = m.mm
        self.capacity = m.capacity
        self._mask = m.capacity - 1
        self._slot_size = m.slot_size
        self._slot_words = m.slot_words
        self._slot_word0 = m.header_size // 8
        self._slot_base = m.header_size
        self._epoch = int(m.words[_W_EPOCH])
        self._symbols: dict[int, str] = {}

    def close(self) -> None:
        """Unmap the file."""
        if self._map is None:
            return
        del self._words, self._mm
        self._map.close()
        self._map = None  # type: ignore[assignment]

    def __enter__(self) -> RingReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- state -----------------------------------------------------------------------------------------------

    @property
    def cursor(self) -> int:
        """The sequence of the next record this reader will return."""
        return self._cursor

    @property
    def epoch(self) -> int:
        """The writer epoch this reader last synchronised with."""
        return self._epoch

    @property
    def epoch_start_seq(self) -> int:
        """The first sequence of the current writer epoch (earlier records came from an earlier writer)."""
        return int(self._words[_W_EPOCH_START])

    @property
    def published(self) -> int:
        """The writer's last published sequence."""
        return int(self._words[_W_PUBLISHED])

    @property
    def records_read(self) -> int:
        """How many records this reader has returned."""
        return self._cursor - self._read_base

    @property
    def lag(self) -> int:
        """How many published records this reader has not read yet."""
        return max(0, int(self._words[_W_PUBLISHED]) + 1 - self._cursor)

    def writer_heartbeat_age_ns(self) -> int:
        """Nanoseconds since the writer last published or called ``heartbeat()`` (CLOCK_MONOTONIC)."""
        return time.monotonic_ns() - int(self._words[_W_HEARTBEAT])

    def stats(self) -> dict[str, int]:
        """Return the reader's counters."""
        return {
            "records_read": self.records_read,
            "records_lost": self.records_lost,
            "overruns": self.overruns,
            "torn_reads": self.torn_reads,
            "resyncs": self.resyncs,
            "epoch_changes": self.epoch_changes,
            "cursor": self._cursor,
            "epoch": self._epoch,
        }

    # -- symbols ---------------------------------------------------------------------------------------------

    def symbol(self, symbol_id: int) -> str:
        """Return the name of ``symbol_id`` (KeyError if the writer has not added it)."""
        name = self._symbols.get(symbol_id)
        if name is None:
            if not 0 <= symbol_id < int(self._words[_W_SYMBOL_COUNT]):
                raise KeyError(f"symbol id {symbol_id} is not in the ring's symbol table")
            name = self._symbols[symbol_id] = _symbol_name(self._mm, symbol_id)
        return name

    def symbols(self) -> dict[int, str]:
        """Return the whole symbol table as id → name."""
        return {symbol_id: self.symbol(symbol_id) for symbol_id in range(int(self._words[_W_SYMBOL_COUNT]))}

    # -- reading ---------------------------------------------------------------------------------------------

    def read_one_bytes(self) -> bytes | None:
        """Return the next record as bytes, or None if none is published yet (the per-record fast path).

        Two loads of the slot's seq word around one copy out of the mapping (a seqlock); the header is not
        touched while records are flowing.
        """
        cursor = self._cursor
        offset = self._slot_base + (cursor & self._mask) * self._slot_size
        word = offset >> 3
        words = self._words
        if words[word] != cursor:
            return self._read_one_slow()
        data = self._mm[offset : offset + self._slot_size]  # one memcpy out of the mapping
        if words[word] != cursor:  # the writer lapped us while we copied
            self._torn(cursor)
            return None
        self._cursor = cursor + 1
        return data

    def read_one(self) -> np.void | None:
        """Return the next record as a read-only ``np.void``, or None if none is published yet."""
        data = self.read_one_bytes()
        if data is None:
            return None
        return np.frombuffer(data, dtype=self.dtype)[0]

    def read_into(self, out: np.ndarray) -> int:
        """Copy up to ``len(out)`` next records into ``out`` (ring dtype, no allocation); return how many."""
        if out.dtype != self.dtype or not out.flags.c_contiguous or not out.flags.writeable:
            raise ValueError(f"out must be a writable C-contiguous array of {self.dtype}")
        published = self._check_published()
        return self._read_into(out, min(published + 1 - self._cursor, len(out)))

    def words_of(self, out: np.ndarray) -> np.ndarray:
        """``out`` (a writable C-contiguous array of the ring's dtype) as the 2-D uint64 view :meth:`read_words`
        takes: checked and made once by a consumer that reads into the same buffer again and again."""
        if out.dtype != self.dtype or not out.flags.c_contiguous or not out.flags.writeable:
            raise ValueError(f"out must be a writable C-contiguous array of {self.dtype}")
        return out.reshape(-1).view(np.uint64).reshape(-1, self._slot_words)

    def read_words(self, words_out: np.ndarray) -> int:
        """:meth:`read_into` for a buffer already seen as words (:meth:`words_of`): no checks or views per call."""
        published = self._check_published()
        return self._copy_run(words_out, min(published + 1 - self._cursor, words_out.shape[0]))

    def read_batch(self, max_records: int = 4096) -> np.ndarray:
        """Return up to ``max_records`` next records as a new structured array (empty if none)."""
        published = self._check_published()
        n = max(0, min(published + 1 - self._cursor, max_records))
        out = np.empty(n, dtype=self.dtype)
        if n == 0:
            return out
        return out[: self._read_into(out, n)]

    def _read_into(self, out: np.ndarray, n: int) -> int:
        if n <= 0:
            return 0
        return self._copy_run(out.reshape(-1).view(np.uint64).reshape(-1, self._slot_words), n)

    def _copy_run(self, words_out: np.ndarray, n: int) -> int:
        if n <= 0:
            return 0
        cursor = self._cursor
        got = _read_run(self._map.slots, self._mask, cursor, words_out, n)
        self._cursor = cursor + got
        if got < n:
            self._torn(cursor + got)
        return got

    def read_each(self, out: np.ndarray, recv_time_ns: np.ndarray | None = None) -> int:
        """Take up to ``len(out)`` records one at a time, each found, copied and validated on its own.

        The compiled per-record consumer: each record is detected by its own slot seq (no header read), so it
        is taken as soon as it is published. With ``recv_time_ns`` (int64, same length), store the
        CLOCK_MONOTONIC time at which each record was taken. Return how many were taken.
        """
        words_out = out.reshape(-1).view(np.uint64).reshape(-1, self._slot_words)
        recv = self._no_recv if recv_time_ns is None else recv_time_ns
        got, status = _read_each(self._map.slots, self._mask, self._cursor, words_out, recv, self._timespec)
        self._cursor += got
        if status == 2:
            self._torn(self._cursor)
        elif (status == 1 or got == 0) and len(out) and self._next_slot_missing() and got == 0:
            # Resynced, re-attached or just published: take what is there now (once; no retry loop).
            got, status = _read_each(self._map.slots, self._mask, self._cursor, words_out, recv, self._timespec)
            self._cursor += got
            if status == 2:
                self._torn(self._cursor)
        return got

    # -- slow paths ------------------------------------------------------------------------------------------

    def _check_published(self) -> int:
        """Handle epoch changes, retirement and overruns; return the published sequence."""
        words = self._words
        if words[_W_EPOCH] != self._epoch:
            self._on_epoch_change()
            words = self._words
        published = words[_W_PUBLISHED]
        if published < self._cursor and words[_W_STATE] == STATE_RETIRED:
            if self._reattach():
                return self._check_published()
            return published
        if published - self._cursor >= self.capacity:
            self._resync(published)
        return published

    def _read_one_slow(self) -> bytes | None:
        """``read_one_bytes`` when the next slot does not hold the cursor."""
        words = self._words
        if words[_W_PUBLISHED] < self._cursor and words[_W_EPOCH] == self._epoch and words[_W_STATE] == STATE_READY:
            return None  # a caught-up reader polling a live ring: nothing new, nothing to handle (kept cheap)
        if not self._next_slot_missing():
            return None
        # Look once more (no retry loop: under a flood the next look could miss again).
        cursor = self._cursor
        offset = self._slot_base + (cursor & self._mask) * self._slot_size
        words = self._words
        if words[offset >> 3] != cursor:
            return None
        data = self._mm[offset : offset + self._slot_size]
        if words[offset >> 3] != cursor:
            self._torn(cursor)
            return None
        self._cursor = cursor + 1
        return data

    def _next_slot_missing(self) -> bool:
        """Explain why the slot of the cursor does not hold it; return True if the reader should look again.

        Handles epoch changes, re-attachment and overruns; a slot that should hold a published record but
        holds another seq is a torn (or lapped) slot and is never returned.
        """
        cursor = self._cursor
        published = self._check_published()
        if self._cursor != cursor:  # resynced or re-attached
            return True
        slot_seq = self._words[self._slot_word0 + (cursor & self._mask) * self._slot_words]
        if slot_seq == cursor:  # published between our two looks
            return True
        if published >= cursor:
            self._torn(cursor)
            return self._cursor != cursor
        return False

    def _torn(self, seq: int) -> None:
        """Count a torn read of ``seq`` once, and resync if the writer has lapped us."""
        if self._torn_at != seq:
            self._torn_at = seq
            self.torn_reads += 1
        self._resync_if_overrun()

    def _resync_if_overrun(self) -> None:
        published = self._words[_W_PUBLISHED]
        if published - self._cursor >= self.capacity - 1:
            # The slot we wanted is being (or has been) overwritten by the writer's next lap.
            self._resync(max(published, self._cursor + self.capacity - 1))

    def _resync(self, published: int) -> None:
        # "oldest": a race with the writer on that slot shows up as a torn read and another resync.
        target = published - self.capacity + 1 if self._on_overrun == "oldest" else published
        target = max(target, self._cursor + 1)
        self.records_lost += target - self._cursor
        self.overruns += 1
        self.resyncs += 1
        self._read_base += target - self._cursor  # skipped, not read
        self._cursor = target

    def _on_epoch_change(self) -> None:
        # Sequences continue across a writer restart in the same file, so the cursor stays valid; the epoch
        # change tells consumers that upstream data between the old writer's last record and
        # ``epoch_start_seq`` is missing (e.g. rebuild order-book state).
        self._epoch = int(self._words[_W_EPOCH])
        self.epoch_changes += 1
        self.resyncs += 1

    def _reattach(self) -> bool:
        now = time.monotonic_ns()
        if now < self._next_reattach_ns:
            return False
        self._next_reattach_ns = now + 10_000_000  # try at most every 10 ms while the writer replaces the file
        try:
            mapping = _attach(self.path, self.dtype, self.fingerprint, self.layout_name, timeout=0.0)
        except RingNotReadyError:
            return False
        self.close()
        self._map = mapping
        self._bind()
        published = int(self._words[_W_PUBLISHED])
        oldest = max(1, published - self.capacity + 1)
        self.records_lost += oldest - 1
        self._read_base += oldest - self._cursor  # the count of records read carries over to the new file
        self._cursor = oldest
        self.epoch_changes += 1
        self.resyncs += 1
        return True


def _attach(path: Path, dtype: np.dtype, fingerprint: int, layout_name: str, timeout: float) -> _Mapping:
    """Open and validate a ring file, waiting up to ``timeout`` s for it to exist and be READY."""
    deadline = time.monotonic() + timeout
    delay = 0.001
    while True:
        reason = _try_attach(path, dtype, fingerprint, layout_name)
        if isinstance(reason, _Mapping):
            return reason
        if time.monotonic() >= deadline:
            raise RingNotReadyError(f"ring {path} not ready after {timeout:g} s: {reason}")
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def _try_attach(path: Path, dtype: np.dtype, fingerprint: int, layout_name: str) -> _Mapping | str:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return "file does not exist"
    try:
        size = os.fstat(fd).st_size
        if size < CONTROL_PAGE:
            return f"file is {size} bytes, shorter than the {CONTROL_PAGE}-byte header (still being created?)"
        with mmap.mmap(fd, CONTROL_PAGE, access=mmap.ACCESS_READ) as mm:
            control = _read_control(mm)
        if control["magic"] != MAGIC:
            if control["magic"] == bytes(8):
                return "header not written yet (no magic)"
            raise RingLayoutError(f"{path} is not an AEGIS ring (magic {control['magic']!r}, expected {MAGIC!r})")
        if control["state"] == STATE_INITIALISING:
            return "initialised flag not set (writer still initialising, or it died while doing so)"
        if control["state"] == STATE_RETIRED:
            return "file is retired (its writer is replacing it)"
        if control["version"] != LAYOUT_VERSION or control["fingerprint"] != fingerprint:
            ours = _describe(layout_name, fingerprint, layout_text(dtype))
            theirs = _describe(
                str(control["layout_name"]),
                int(control["fingerprint"]),
                str(control["layout_text"]),  # type: ignore[arg-type]
            )
            raise RingLayoutError(
                f"ring {path} has layout version {control['version']} {theirs}; "
                f"this reader expects layout version {LAYOUT_VERSION} {ours}"
            )
        if control["slot_size"] != dtype.itemsize:
            raise RingLayoutError(f"ring {path} has {control['slot_size']}-byte slots, expected {dtype.itemsize}")
        capacity = int(control["capacity"])  # type: ignore[arg-type]
        header_size = int(control["header_size"])  # type: ignore[arg-type]
        if capacity < 2 or capacity & (capacity - 1) or header_size < CONTROL_PAGE:
            raise RingLayoutError(f"ring {path} has a corrupt header (capacity {capacity}, header {header_size})")
        expected = header_size + capacity * dtype.itemsize
        if size != expected:
            raise RingLayoutError(f"ring {path} is {size} bytes, its header describes {expected}")
        return _Mapping(fd, size, dtype, writable=False)
    finally:
        os.close(fd)


# ------------------------------------------------------------------------------------------------------------
# Helpers


def warm_up() -> None:
    """Compile (or load from numba's cache) every ring kernel now, so the first batch does not pay for it.

    Call it once at process start, before the hot loop; the feed and brain do.
    """
    slots = np.zeros((4, 2), dtype=np.uint64)
    header = np.zeros(CONTROL_PAGE // 8, dtype=np.uint64)
    records = np.zeros((1, 2), dtype=np.uint64)
    timespec = np.zeros(2, dtype=np.int64)
    recv = np.zeros(1, dtype=np.int64)
    _write_run(slots, header, 3, 1, records, 0)
    _write_each(slots, header, 3, 2, records, 1, timespec)
    _read_run(slots, 3, 1, records, 1)
    _read_each(slots, 3, 2, records, recv, timespec)
    readonly = slots.copy()
    readonly.flags.writeable = False  # readers map the file read-only: a separate specialisation
    _read_run(readonly, 3, 1, records, 1)
    _read_each(readonly, 3, 2, records, recv, timespec)


def create(
    path: str | os.PathLike[str],
    dtype: np.dtype,
    capacity: int,
    *,
    layout_name: str = "",
    symbol_capacity: int = DEFAULT_SYMBOL_CAPACITY,
) -> RingWriter:
    """Create (or re-initialise, bumping the epoch) the ring at ``path`` and return its writer."""
    return RingWriter(path, dtype, capacity, layout_name=layout_name, symbol_capacity=symbol_capacity)


def attach(
    path: str | os.PathLike[str],
    dtype: np.dtype,
    *,
    layout_name: str = "",
    timeout: float = 10.0,
    start: Start = "oldest",
    on_overrun: OnOverrun = "oldest",
) -> RingReader:
    """Attach a reader to the ring at ``path``, waiting up to ``timeout`` s for it to be initialised."""
    return RingReader(path, dtype, layout_name=layout_name, timeout=timeout, start=start, on_overrun=on_overrun)
