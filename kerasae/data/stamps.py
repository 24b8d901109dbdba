"""`Stamps`: a series' timestamps as one array of UTF-8 bytes, not a list of strings.

A Python string per time step costs about 76 bytes ("2014-07-01 00:00:00" held in a
list); these 19 characters cost 19 bytes here (the longest stamp sets the width). It
reads like the list it replaces: `len`, `stamps[i]` (a `str`), `stamps[a:b]` (`Stamps`),
iteration and `list(stamps)`.
"""

import numpy as np


def _encoded(texts):
    return np.array([t.encode("utf-8") for t in texts], dtype="S") if len(texts) else \
        np.empty(0, "S1")


class Stamps:
    """Timestamps, one `str` per step, stored as fixed-width UTF-8 bytes."""

    __slots__ = ("_b",)

    def __init__(self, texts=()):
        self._b = texts._b if isinstance(texts, Stamps) else (
            texts if isinstance(texts, np.ndarray) and texts.dtype.kind == "S"
            else _encoded(list(texts)))

    @classmethod
    def join(cls, chunks):
        """One `Stamps` of `Stamps` chunks, in order (the widest sets the width)."""
        parts = [c._b for c in chunks]
        return cls(np.concatenate(parts) if parts else np.empty(0, "S1"))

    def __len__(self):
        return len(self._b)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return Stamps(self._b[i])
        return self._b[i].decode("utf-8")

    def __iter__(self):
        return (b.decode("utf-8") for b in self._b)

    def __eq__(self, other):
        return list(self) == list(other)

    def __repr__(self):
        head = ", ".join(repr(s) for s in self[:3])
        return f"Stamps([{head}{', ...' if len(self) > 3 else ''}], n={len(self)})"

    def steps_back(self):
        """`(count, i, at, before)`: how many steps' times come before the step's ahead of
        them, and the first such step i with its stamp and its predecessor's; `None` when
        none does or the stamps are not ISO dates and times (not checked)."""
        try:
            t = np.char.decode(self._b, "utf-8").astype("datetime64[s]")
        except ValueError:
            return None
        back = np.flatnonzero(t[1:] < t[:-1])
        if not len(back):
            return None
        i = int(back[0]) + 1
        return len(back), i, self[i], self[i - 1]

    @property
    def nbytes(self):
        return self._b.nbytes
