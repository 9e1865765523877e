"""A minimal Standard MIDI File writer (format 0, one track): enough to have fluidsynth render single notes.

Time is in milliseconds: 1000 ticks per quarter note at a tempo of 1,000,000 microseconds per quarter.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

TICKS_PER_QUARTER = 1000
TEMPO_US = 1_000_000     # one quarter per second: one tick per millisecond


@dataclass(frozen=True)
class Note:
    start_ms: int
    length_ms: int
    pitch: int
    velocity: int


def _vlq(n: int) -> bytes:
    """MIDI variable-length quantity."""
    if n < 0:
        raise ValueError(f"negative delta time {n}")
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.append(0x80 | (n & 0x7F))
        n >>= 7
    return bytes(reversed(out))


def midi_bytes(notes: list[Note], program: int, channel: int = 0, bank: int = 0) -> bytes:
    """The bytes of a format-0 file: bank select and program change on `channel`, then the notes."""
    if not (0 <= channel < 16 and 0 <= program < 128 and 0 <= bank < 128):
        raise ValueError(f"bad channel/program/bank {channel}/{program}/{bank}")
    events: list[tuple[int, int, bytes]] = []   # (time, order, bytes): note-offs before note-ons at equal times
    for n in notes:
        if not (0 <= n.pitch < 128 and 1 <= n.velocity < 128 and n.length_ms > 0):
            raise ValueError(f"bad note {n}")
        events.append((n.start_ms, 1, bytes([0x90 | channel, n.pitch, n.velocity])))
        events.append((n.start_ms + n.length_ms, 0, bytes([0x80 | channel, n.pitch, 0])))
    events.sort(key=lambda e: (e[0], e[1]))
    track = bytearray()
    track += _vlq(0) + b"\xff\x51\x03" + TEMPO_US.to_bytes(3, "big")
    track += _vlq(0) + bytes([0xB0 | channel, 0, bank])          # bank select (MSB)
    track += _vlq(0) + bytes([0xC0 | channel, program])
    now = 0
    for t, _, data in events:
        track += _vlq(t - now) + data
        now = t
    track += _vlq(1000) + b"\xff\x2f\x00"                        # end of track one second after the last event
    header = b"MThd" + struct.pack(">IHHH", 6, 0, 1, TICKS_PER_QUARTER)
    return header + b"MTrk" + struct.pack(">I", len(track)) + bytes(track)


def write_midi(path: str | Path, notes: list[Note], program: int, channel: int = 0, bank: int = 0) -> None:
    Path(path).write_bytes(midi_bytes(notes, program, channel, bank))
