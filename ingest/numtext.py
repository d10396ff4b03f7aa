"""Numbers as text, vectorised: the digit tables, packed byte records and the shortest
round-trip decimal of float64 values that `ingest.lineproto` builds lines from.

`format_floats` writes each value as the shortest string that parses back to the same float64
(the digits of ``repr(float)``), each proven exact: one test in doubles covers every value
with at most four decimals (what sensors report), a second one 15 significant digits, long
double 16 and 17 digits. What none of them proves, and values below 1e-4 or from 1e16 on
(which repr() writes with an exponent), go through numpy's Dragon4 (``astype("S")``), exact
but slower. Digits are written with integer arithmetic, four per table lookup.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

U8M = npt.NDArray[np.uint8]
_I64 = npt.NDArray[np.int64]

_POW10_I = 10 ** np.arange(19, dtype=np.int64)        # 1 .. 1e18
_POW10_F = 10.0 ** np.arange(23)                      # exact doubles 1 .. 1e22


def _quads(render: Callable[[int], bytes]) -> npt.NDArray[np.uint32]:
    """``render(i)`` (4 bytes) for i = 0..9999 as one uint32 each: four digits per lookup."""
    return np.frombuffer(b"".join(render(i) for i in range(10_000)), dtype=np.uint32)


def _table(*blocks: npt.NDArray[np.uint32]) -> npt.NDArray[np.uint32]:
    table = np.concatenate(blocks)
    table.setflags(write=False)
    return table


_DIGITS = _quads(lambda i: b"%04d" % i)
# Blocks of 10,000: all four digits; the zeros ahead (integer part) or behind (fraction) as
# NUL, so 0 is no digit at all; and for integers 0 as "0", which a zero integer part shows.
_INT_QUADS = _table(_DIGITS, _quads(lambda i: (b"%d" % i if i else b"").rjust(4, b"\0")),
                    _quads(lambda i: (b"%d" % i).rjust(4, b"\0")))
_FRAC_QUADS = _table(_DIGITS, _quads(lambda i: (b"%04d" % i).rstrip(b"0").ljust(4, b"\0")))
_SHORT = 4                                            # decimals of the one-pass test
_MAX_K = 18                                           # decimals the fast paths write
# Long double must hold a 17-digit integer exactly for the 16/17-digit path (x86-64: 64 bits).
_LONG_OK = np.finfo(np.longdouble).nmant >= 63
_POW10_L = np.array([10**i for i in range(_MAX_K + 1)], dtype=np.longdouble)


def int_digits(u: _I64, groups: int) -> npt.NDArray[np.uint32]:
    """ASCII of non-negative ``u < 10**(4 * groups)`` right-aligned in ``groups`` quads,
    leading zeros as NUL ("0" stays "0")."""
    if groups == 1:
        return _INT_QUADS[u + 20_000][:, None]
    # all groups at once, most significant first: few numpy calls for many short rows
    rem = u // _POW10_I[4 * np.arange(groups - 1, -1, -1)][:, None] % 10_000
    alone = ~np.logical_or.accumulate(rem[:-1] != 0, axis=0) * 10_000   # nothing ahead
    rem[0] += 10_000
    rem[1:] += alone
    rem[-1] += alone[-1]                               # the last digit shows even if 0
    return np.ascontiguousarray(_INT_QUADS[rem].T)


def _frac_digits(x: _I64, groups: int) -> npt.NDArray[np.uint32]:
    """ASCII of the ``4 * groups`` digits of ``x`` (zero-padded ahead) in ``groups`` quads,
    zeros behind the last non-zero digit as NUL."""
    out = np.empty((len(x), groups), dtype=np.uint32)
    more = None                                        # a later group has a non-zero digit
    for g in range(groups - 1, -1, -1):
        x, rem = np.divmod(x, 10_000) if g else (x, x)
        out[:, g] = _FRAC_QUADS[rem + 10_000 if more is None else rem + ~more * 10_000]
        if g:
            more = rem != 0 if more is None else more | (rem != 0)
    return out


def records(n: int, **fields: int) -> npt.NDArray[np.void]:
    """``n`` uninitialised packed records of byte fields (width 1: uint8, else void): column
    writes into one are 1-D copies, far cheaper than into a 2-D slice of a byte matrix."""
    return np.empty(n, dtype=np.dtype([(k, "u1" if w == 1 else f"V{w}")
                                       for k, w in fields.items()]))


def voids(items: list[bytes]) -> npt.NDArray[np.void]:
    """``items`` NUL-padded to one width, one void item each: a gather of them copies whole
    items, not bytes."""
    width = max((len(b) for b in items), default=1)
    return np.array(items, dtype=f"S{width}").view(f"V{width}")


def lead(items: npt.NDArray[np.void], width: int) -> npt.NDArray[np.void]:
    """A view of the first ``width`` bytes of each item, as one void item each."""
    return items.view({"names": ["lead"], "formats": [f"V{width}"],
                       "itemsize": items.dtype.itemsize})["lead"]


def void(a: npt.NDArray[np.generic]) -> npt.NDArray[np.void]:
    """The rows of a C-contiguous 2-D array as one void item each."""
    return a.view(f"V{a.shape[1] * a.itemsize}")[:, 0]


def _fixed_point(a: npt.NDArray[np.float64]) -> tuple[_I64, _I64]:
    """(m, k) per value: ``m / 10**k`` is the shortest decimal that parses back to ``a``,
    m possibly with zeros behind; k = -1 where no decimal of at most 17 significant digits
    and `_MAX_K` decimals was proven exact."""
    # Up to 15 digits in doubles: m and 10**k are exact, so the quotient is the correctly
    # rounded value of the decimal m/10**k and equality proves that it parses back to a.
    # Such a decimal is unique, and scaled to k >= its decimals it rounds to itself (error
    # < 1/4): one test at _SHORT decimals, what sensors report, finds all of those at once.
    scale = _POW10_F[_SHORT]
    with np.errstate(over="ignore"):                   # huge values: inf, no hit
        m = np.rint(a * scale)
    hit = (m < 1e15) & (m / scale == a)
    if hit.all():
        return m.astype(np.int64), np.full(len(a), _SHORT, dtype=np.int64)
    k_of = np.where(hit, _SHORT, -1)
    m_of = np.where(hit, m, 0.0).astype(np.int64)
    todo = np.flatnonzero(~hit)
    todo = todo[(a[todo] >= 1e-4) & (a[todo] < 1e16)]
    if todo.size == 0:
        return m_of, k_of
    # The rest at 15 significant digits. A floor(log10) one off tests 14 or 16 digits, which
    # m < 1e15 and the test keep exact; what they miss takes the paths below.
    e10 = np.floor(np.log10(a[todo])).astype(np.int64)
    k = np.minimum(14 - e10, _MAX_K)
    scale = _POW10_F[np.maximum(k, 0)]
    m = np.rint(a[todo] * scale)
    hit = (k >= 0) & (m < 1e15) & (m / scale == a[todo])
    k_of[todo[hit]] = k[hit]
    m_of[todo[hit]] = m[hit]
    todo, e10 = todo[~hit], e10[~hit]
    if not _LONG_OK or todo.size == 0:
        return m_of, k_of
    # 16 and 17 digits: the same test in long double, where m < 1e17 is still exact. Its
    # quotient is rounded twice (64 then 53 bits), which is only wrong when the first
    # rounding lands on a midpoint between doubles: those go to Dragon4.
    for digits in (16, 17):
        k = digits - 1 - e10
        fits = (k >= 0) & (k <= _MAX_K)
        todo, e10, k = todo[fits], e10[fits], k[fits]
        lscale = _POW10_L[k]
        exact = a[todo].astype(np.longdouble) * lscale   # within 2**-8 of a * 10**k
        m = np.rint(exact)
        q = m / lscale
        d = q.astype(np.float64)
        off, half = np.abs(q - d), np.spacing(d) / 2
        # a midpoint is half an ulp away, or a quarter below a power of two
        tie = (off == half) | ((off == half / 2) & (q < d) & (np.frexp(d)[0] == 0.5))
        # near a decimal tie the rounding may pick the farther neighbour: leave it to Dragon4
        unsure = tie | (np.abs(np.abs(exact - m) - 0.5) < 2.0 ** -7)
        hit = (m < 1e17) & (d == a[todo]) & ~unsure
        k_of[todo[hit]] = k[hit]
        m_of[todo[hit]] = m[hit].astype(np.int64)
        todo, e10 = todo[~hit & ~unsure], e10[~hit & ~unsure]
    return m_of, k_of


def _decimal_text(v: npt.NDArray[np.float64], m: _I64, k: _I64 | int) -> U8M:
    """``v`` (``== ±m / 10**k``) as repr() writes it, as NUL-padded rows: sign, integer
    digits, ".", decimals without the zeros behind ("3.0" keeps one)."""
    q, r = np.divmod(m, _POW10_I[k])
    ig = max(-(-len(str(int(q.max(initial=0)))) // 4), 1)
    fg = -(-max(k if isinstance(k, int) else int(k.max()), 1) // 4)
    d = min(4 * fg, _MAX_K)                            # r * 10**(d - k) stays in int64
    frac = _frac_digits(r * _POW10_I[d - k], fg)
    if d < 4 * fg:                                     # drop the columns of the zeros ahead
        frac = np.ascontiguousarray(frac.view(np.uint8)[:, 4 * fg - d:])
    out = records(len(v), sign=1, int=4 * ig, dot=1, frac=d)
    out["sign"] = np.signbit(v).view(np.uint8) * ord("-")
    out["int"] = void(int_digits(q, ig))
    out["dot"] = ord(".")
    out["frac"] = void(frac)
    text = out.view(np.uint8).reshape(len(v), -1)
    text[:, 2 + 4 * ig] |= (r == 0).view(np.uint8) * ord("0")   # 3 -> "3.0"
    return text


def format_floats(v: npt.NDArray[np.float64]) -> U8M:
    """Shortest round-trip decimal of each finite value (``repr(float)``'s digits), as
    NUL-padded rows of a byte matrix."""
    m, k = _fixed_point(np.abs(v))
    short = k == _SHORT
    if short.all():
        return _decimal_text(v, m, _SHORT)
    # rows only line up in width: write each kind of row apart, then place them
    parts = []
    rows = np.flatnonzero(short)
    if rows.size:
        parts.append((rows, _decimal_text(v[rows], m[rows], _SHORT)))
    rows = np.flatnonzero(~short & (k >= 0))
    if rows.size:
        parts.append((rows, _decimal_text(v[rows], m[rows], k[rows])))
    slow = np.flatnonzero(k < 0)
    if slow.size:                                      # Dragon4: shortest, exact, slow
        text = v[slow].astype("S24").view(np.uint8).reshape(-1, 24)
        parts.append((slow, text[:, :int(np.flatnonzero(text.any(axis=0))[-1]) + 1]))
    out = np.zeros((len(v), max(p.shape[1] for _, p in parts)), dtype=np.uint8)
    for rows, p in parts:
        lead(void(out), p.shape[1])[rows] = void(p)
    return out
