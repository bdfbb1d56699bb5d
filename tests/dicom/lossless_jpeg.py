"""A small lossless JPEG (ITU T.81 process 14, SOF3) encoder for test streams.

No pip package here writes lossless JPEG with a point transform, so the tests make their
own streams: one component, Huffman-coded differences from a chosen predictor (1-7), any
precision from 2 to 16 bits and any point transform. Slow (pure Python) but exact; keep
images small.
"""

from __future__ import annotations

import struct

import numpy as np

# One code length for every difference category 0..16: 5-bit codes 00000..10000 (the
# all-ones code is never used, as T.81 requires).
_BITS = [0, 0, 0, 0, 17] + [0] * 11  # count of codes per length 1..16
_CATEGORIES = list(range(17))


class _BitWriter:
    def __init__(self) -> None:
        self.out = bytearray()
        self.value = 0
        self.count = 0

    def write(self, bits: int, length: int) -> None:
        for shift in range(length - 1, -1, -1):
            self.value = (self.value << 1) | ((bits >> shift) & 1)
            self.count += 1
            if self.count == 8:
                self._emit(self.value)
                self.value = self.count = 0

    def _emit(self, byte: int) -> None:
        self.out.append(byte)
        if byte == 0xFF:
            self.out.append(0x00)  # byte stuffing

    def flush(self) -> bytes:
        if self.count:
            self._emit((self.value << (8 - self.count)) | ((1 << (8 - self.count)) - 1))
            self.value = self.count = 0
        return bytes(self.out)


def _predict(values: np.ndarray, row: int, column: int, predictor: int, initial: int) -> int:
    if row == 0 and column == 0:
        return initial
    if row == 0:
        return int(values[row, column - 1])
    if column == 0:
        return int(values[row - 1, column])
    a = int(values[row, column - 1])
    b = int(values[row - 1, column])
    c = int(values[row - 1, column - 1])
    return {1: a, 2: b, 3: c, 4: a + b - c, 5: a + ((b - c) >> 1), 6: b + ((a - c) >> 1),
            7: (a + b) >> 1}[predictor]


def encode(image: np.ndarray, precision: int, point_transform: int = 0,
           predictor: int = 1) -> bytes:
    """A lossless JPEG stream of a 2-D unsigned image whose values fit ``precision`` bits.

    With a point transform Pt the stream holds ``image >> Pt`` and a decoder gives back
    ``(image >> Pt) << Pt``.
    """
    rows, columns = image.shape
    values = (np.asarray(image, dtype=np.int64) >> point_transform)
    initial = 1 << (precision - point_transform - 1)
    modulo = 1 << 16
    writer = _BitWriter()
    for row in range(rows):
        for column in range(columns):
            difference = (int(values[row, column])
                          - _predict(values, row, column, predictor, initial)) % modulo
            if difference >= 32768:
                difference -= modulo
            category = 0 if difference == 0 else min(16, abs(difference).bit_length())
            writer.write(category, 5)
            if 0 < category < 16:
                extra = difference if difference > 0 else difference + (1 << category) - 1
                writer.write(extra, category)
    scan = writer.flush()
    start_of_frame = struct.pack(">BHHB", precision, rows, columns, 1) + bytes([1, 0x11, 0])
    huffman = bytes([0x00]) + bytes(_BITS) + bytes(_CATEGORIES)
    start_of_scan = bytes([1, 1, 0x00, predictor, 0, point_transform])
    return (b"\xff\xd8"
            + b"\xff\xc3" + struct.pack(">H", 2 + len(start_of_frame)) + start_of_frame
            + b"\xff\xc4" + struct.pack(">H", 2 + len(huffman)) + huffman
            + b"\xff\xda" + struct.pack(">H", 2 + len(start_of_scan)) + start_of_scan
            + scan + b"\xff\xd9")
