"""The heartbeat disk: a shared file or block device with one 4 KiB slot per node.

A second channel beside the network (seed 001's heartbeat disk; Pacemaker SBD is the
reference). Layout, every cell one 4096-octet block::

    block 0     header: magic "COVEYHBD", layout version (u32), slot count (u32),
                block size (u32), zero padding
    block 1+i   slot i: magic "SLOT", name length (u8), name (255 octets), node id (16),
                wall timestamp (f64), term (u64), incarnation (u64), sequence (u64),
                CRC-32 of everything before it (u32); all zeros when free

Every node writes its own slot each election heartbeat and reads all of them. Writes go
through ``O_DIRECT`` (page-aligned buffer) so they reach the device, not the page cache;
where ``O_DIRECT`` is refused (tmpfs answers EINVAL) the file is opened normally and every
write is followed by ``fsync``. Reads of other slots are only compared for *change*,
never against our clock.
"""

from __future__ import annotations

import contextlib
import errno
import mmap
import os
import struct
import zlib
from pathlib import Path

from covey.core.election.events import DiskSlot
from covey.core.records import record

MAGIC = b"COVEYHBD"
LAYOUT_VERSION = 1
BLOCK = 4096
SLOT_MAGIC = b"SLOT"
MAX_SLOTS = 4096
_HEADER = struct.Struct("<8sIII")
_SLOT = struct.Struct("<4sB255s16sdQQQ")
_CRC = struct.Struct("<I")


class DiskError(Exception):
    """The heartbeat disk is missing, unreadable, not formatted, or full."""


@record
class SlotRecord:
    """One decoded slot."""

    index: int
    name: str
    node_id: bytes
    stamp: float
    term: int
    incarnation: int
    seq: int

    def to_json(self) -> dict[str, object]:
        """JSON form for ``covey disk dump --json``."""
        return {
            "slot": self.index,
            "name": self.name,
            "id": self.node_id.hex(),
            "timestamp": self.stamp,
            "term": self.term,
            "incarnation": self.incarnation,
            "seq": self.seq,
        }

    def observation(self) -> DiskSlot:
        """What the election core needs of it."""
        return DiskSlot(self.node_id, self.name, self.stamp, self.term, self.incarnation)


def format_disk(path: Path, slots: int) -> None:
    """Write an empty layout with ``slots`` slots (a regular file is created or resized)."""
    if not 1 <= slots <= MAX_SLOTS:
        raise DiskError(f"slots: must be 1..{MAX_SLOTS}")
    header = _HEADER.pack(MAGIC, LAYOUT_VERSION, slots, BLOCK).ljust(BLOCK, b"\0")
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise DiskError(f"cannot open {path}: {exc.strerror}") from None
    try:
        os.pwrite(fd, header, 0)
        zero = b"\0" * BLOCK
        for i in range(slots):
            os.pwrite(fd, zero, BLOCK * (i + 1))
        os.fsync(fd)
    except OSError as exc:
        raise DiskError(f"cannot write {path}: {exc.strerror}") from None
    finally:
        os.close(fd)


def _decode_header(raw: bytes, path: Path) -> int:
    if len(raw) < _HEADER.size:
        raise DiskError(f"{path} is too short to be a heartbeat disk")
    magic, version, slots, block = _HEADER.unpack_from(raw)
    if magic != MAGIC:
        raise DiskError(f"{path} is not a heartbeat disk (run covey disk format)")
    if version != LAYOUT_VERSION:
        raise DiskError(f"{path} has layout version {version}, this covey reads {LAYOUT_VERSION}")
    if block != BLOCK or not 1 <= slots <= MAX_SLOTS:
        raise DiskError(f"{path} has a corrupt header (block {block}, slots {slots})")
    return int(slots)


def _decode_slot(index: int, raw: bytes) -> SlotRecord | None:
    if raw[:4] != SLOT_MAGIC:
        return None
    end = _SLOT.size
    (crc,) = _CRC.unpack_from(raw, end)
    if zlib.crc32(raw[:end]) != crc:
        return None  # torn or corrupt: treated as unwritten
    _, n, name, node_id, stamp, term, inc, seq = _SLOT.unpack_from(raw)
    return SlotRecord(index, name[:n].decode(errors="replace"), node_id, stamp, term, inc, seq)


def _encode_slot(name: str, node_id: bytes, stamp: float, term: int, inc: int, seq: int) -> bytes:
    raw_name = name.encode()[:255]
    body = _SLOT.pack(SLOT_MAGIC, len(raw_name), raw_name, node_id, stamp, term, inc, seq)
    return (body + _CRC.pack(zlib.crc32(body))).ljust(BLOCK, b"\0")


def read_disk(path: Path) -> tuple[int, list[SlotRecord]]:
    """(slot count, the written slots) of the disk at ``path``, read without the cache."""
    with HeartbeatDisk(path) as disk:
        return disk.slots, disk.read()


class HeartbeatDisk:
    """An open heartbeat disk: claim a slot, write it, read every slot."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.direct = True
        self._buf = mmap.mmap(-1, BLOCK)  # page-aligned, as O_DIRECT requires
        try:
            self.fd = os.open(path, os.O_RDWR | getattr(os, "O_DIRECT", 0))
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise DiskError(f"cannot open {path}: {exc.strerror}") from None
            self.direct = False  # tmpfs and some file systems refuse O_DIRECT: fsync instead
            try:
                self.fd = os.open(path, os.O_RDWR)
            except OSError as exc2:
                raise DiskError(f"cannot open {path}: {exc2.strerror}") from None
        try:
            self.slots = _decode_header(self._read_block(0), path)
        except BaseException:
            self.close()
            raise
        self.index: int | None = None
        self._seq = 0

    def _read_block(self, block: int) -> bytes:
        try:
            n = os.preadv(self.fd, [self._buf], block * BLOCK)
        except OSError as exc:
            raise DiskError(f"cannot read {self.path}: {exc.strerror}") from None
        if n < BLOCK:
            raise DiskError(f"{self.path} is shorter than its layout")
        return bytes(self._buf)

    def _write_block(self, block: int, data: bytes) -> None:
        self._buf.seek(0)
        self._buf.write(data)
        try:
            os.pwrite(self.fd, self._buf, block * BLOCK)
            if not self.direct:
                os.fsync(self.fd)
        except OSError as exc:
            raise DiskError(f"cannot write {self.path}: {exc.strerror}") from None

    def read(self) -> list[SlotRecord]:
        """Every written slot."""
        out = []
        for i in range(self.slots):
            rec = _decode_slot(i, self._read_block(i + 1))
            if rec is not None:
                out.append(rec)
        return out

    def claim(self, node_id: bytes, name: str) -> int:
        """Find this node's slot (by id, then by name) or take the first free one."""
        records = self.read()
        for rec in records:
            if rec.node_id == node_id:
                self.index = rec.index
                return rec.index
        for rec in records:
            if rec.name == name:
                self.index = rec.index
                return rec.index
        used = {r.index for r in records}
        free = [i for i in range(self.slots) if i not in used]
        if not free:
            raise DiskError(f"{self.path}: all {self.slots} slots are taken")
        self.index = free[0]
        return self.index

    def write(self, name: str, node_id: bytes, stamp: float, term: int, inc: int) -> None:
        """Write our slot (claimed first)."""
        if self.index is None:
            self.claim(node_id, name)
        assert self.index is not None
        held = _decode_slot(self.index, self._read_block(self.index + 1))
        if held is not None and held.node_id != node_id:
            # Nodes starting together can read the same free slot before either writes:
            # the one that finds the other's id in it moves to a free slot.
            self.index = None
            self.claim(node_id, name)
            assert self.index is not None
        self._seq += 1
        self._write_block(self.index + 1, _encode_slot(name, node_id, stamp, term, inc, self._seq))

    def close(self) -> None:
        """Release the file descriptor."""
        with contextlib.suppress(OSError):
            os.close(self.fd)
        self._buf.close()

    def __enter__(self) -> HeartbeatDisk:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
