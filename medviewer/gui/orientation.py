"""Rotation by quarter turns and flips of what the image view shows (Qt transforms, numpy arrays)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtGui import QTransform

if TYPE_CHECKING:
    import numpy as np

Matrix = tuple[tuple[int, int], tuple[int, int]]
_IDENTITY: Matrix = ((1, 0), (0, 1))
_ROTATE_RIGHT: Matrix = ((0, -1), (1, 0))
_FLIP_HORIZONTAL: Matrix = ((-1, 0), (0, 1))
_FLIP_VERTICAL: Matrix = ((1, 0), (0, -1))


def _multiply(a: Matrix, b: Matrix) -> Matrix:
    return tuple(tuple(sum(a[i][k] * b[k][j] for k in range(2)) for j in range(2))
                 for i in range(2))  # type: ignore[return-value]


class Orientation:
    """Rotation by quarter turns and flips, as the 2x2 matrix applied to the *displayed* image.

    View y points down (as on screen), so a clockwise quarter turn maps (x, y) to (-y, x).
    Each operation acts on what the user currently sees, whatever was done before.
    ``matrix`` is ((m00, m01), (m10, m11)) with view = matrix . image (about the centre).
    """

    def __init__(self, matrix=None) -> None:
        self.matrix: Matrix = _IDENTITY if matrix is None else tuple(
            tuple(int(v) for v in row) for row in matrix)  # type: ignore[assignment]

    def rotate_right(self) -> None:
        self.matrix = _multiply(_ROTATE_RIGHT, self.matrix)

    def rotate_left(self) -> None:
        rotate_left = ((0, 1), (-1, 0))
        self.matrix = _multiply(rotate_left, self.matrix)

    def flip_horizontal(self) -> None:
        self.matrix = _multiply(_FLIP_HORIZONTAL, self.matrix)

    def flip_vertical(self) -> None:
        self.matrix = _multiply(_FLIP_VERTICAL, self.matrix)

    def reset(self) -> None:
        self.matrix = _IDENTITY

    @property
    def swaps_axes(self) -> bool:
        return self.matrix[0][0] == 0

    @property
    def is_mirrored(self) -> bool:
        (a, b), (c, d) = self.matrix
        return a * d - b * c < 0

    @property
    def quarter_turns_clockwise(self) -> int:
        """Rotation part, after an optional horizontal flip applied first."""
        rotation = _multiply(self.matrix, _FLIP_HORIZONTAL) if self.is_mirrored else self.matrix
        turn = _IDENTITY
        for quarter in range(4):
            if turn == rotation:
                return quarter
            turn = _multiply(_ROTATE_RIGHT, turn)
        raise AssertionError("orientation matrix is not a rotation/flip")

    def apply_to_array(self, array: np.ndarray) -> np.ndarray:
        """The array as it appears on screen (row 0 at the top), e.g. for export or checks."""
        import numpy as np

        out = np.fliplr(array) if self.is_mirrored else array
        return np.rot90(out, -self.quarter_turns_clockwise, axes=(0, 1))

    def transform(self, width: float, height: float) -> QTransform:
        """Image -> view: orient about the centre, then shift so the result starts at (0, 0)."""
        (m00, m01), (m10, m11) = self.matrix
        out_w, out_h = (height, width) if self.swaps_axes else (width, height)
        cx, cy = width / 2.0, height / 2.0
        dx = out_w / 2.0 - (m00 * cx + m01 * cy)
        dy = out_h / 2.0 - (m10 * cx + m11 * cy)
        # QTransform(m11, m12, m21, m22, dx, dy) maps x' = m11 x + m21 y + dx, y' = m12 x + m22 y + dy
        return QTransform(float(m00), float(m10), float(m01), float(m11), dx, dy)

    def describe(self) -> str:
        parts = []
        turns = self.quarter_turns_clockwise
        if self.is_mirrored:
            parts.append("flipped horizontally")
        if turns:
            parts.append(f"rotated {turns * 90}° clockwise")
        return ", ".join(parts) or "as stored"
