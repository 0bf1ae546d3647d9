"""Sets of papers as Python ints, and numbers of every paper at once as bit planes. No business logic.

The matcher (`digest.matching.matcher`) numbers the papers of a run 0..n-1 and keeps each set of papers
(those a term hit, those in a category, those a reader gets) as one int with bit p set for paper
p: union, intersection and count are then single big-int operations in C.

A number per paper (a score) is kept bit-sliced: `planes[b]` holds bit b of every paper's number,
so adding one term's score to every paper is a ripple-carry adder over a handful of ints
(`add`), and the best k are picked from the planes most significant first (`best`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import reduce
from operator import or_

Planes = tuple[int, ...]  # bit-sliced numbers: bit p of planes[b] is bit b of paper p's number

_bit = (1).__lshift__


def mask(indices: Iterable[int]) -> int:
    """The set of `indices`: one C-level reduction, not one Python step per index."""
    return reduce(or_, map(_bit, indices), 0)


def set_bits(mask: int) -> list[int]:
    """The indices of the set bits, lowest first."""
    if mask.bit_count() <= 64:  # sparse: peel the highest bit off, a few big-int operations each
        out = []
        while mask:
            high = mask.bit_length() - 1
            out.append(high)
            mask ^= 1 << high
        out.reverse()
        return out
    bits = bin(mask)[:1:-1]  # dense: one string, scanned in C
    found = []
    i = bits.find("1")
    while i >= 0:
        found.append(i)
        i = bits.find("1", i + 1)
    return found


def lowest(mask: int, k: int) -> int:
    """The `k` lowest set bits of `mask` (all of them when it has no more)."""
    if mask.bit_count() <= k:
        return mask
    lo, hi = k, mask.bit_length()  # the answer is mask & ((1 << n) - 1) for the least such n
    while lo < hi:
        mid = (lo + hi) // 2
        if (mask & ((1 << mid) - 1)).bit_count() >= k:
            hi = mid
        else:
            lo = mid + 1
    return mask & ((1 << lo) - 1)


def constant_planes(mask: int, value: int) -> Planes:
    """`value` for every paper of `mask`, 0 for the others."""
    return tuple(mask if value >> b & 1 else 0 for b in range(value.bit_length()))


def add(acc: list[int], planes: Planes) -> None:
    """acc += planes, a ripple-carry adder applied to every paper at once."""
    carry = 0
    for b, plane in enumerate(planes):
        if b == len(acc):
            acc.append(0)
        a = acc[b]
        s = a ^ plane
        acc[b] = s ^ carry
        carry = (a & plane) | (s & carry)
    b = len(planes)
    while carry:
        if b == len(acc):
            acc.append(carry)
            return
        a = acc[b]
        acc[b] = a ^ carry
        carry &= a
        b += 1


def best(acc: Sequence[int], matched: int, k: int | None) -> list[tuple[int, int]]:
    """The `k` papers of `matched` with the highest numbers in `acc` (all when None), split by
    number: (number, papers) from the highest down. Among equal numbers the lower bit wins, and
    within a part the lower bit comes first."""
    chosen = matched
    if k is not None and matched.bit_count() > k:
        # Radix select from the most significant plane: `above` surely make the cut, `tied` are
        # equal so far. Whatever is tied at the end shares one number, so the lowest bits win.
        above, tied, have = 0, matched, 0
        for plane in reversed(acc):
            ones = tied & plane
            n = ones.bit_count()
            if have + n >= k:
                tied = ones
                if have + n == k:
                    break
            else:
                above |= ones
                have += n
                tied &= ~plane
        chosen = above | lowest(tied, k - have)
    # Split the chosen papers by number, most significant plane first; each part stays in order.
    parts = [(0, chosen)]
    for b in range(len(acc) - 1, -1, -1):
        plane, bit, split = acc[b], 1 << b, []
        for number, part in parts:
            ones = part & plane
            if ones:
                split.append((number | bit, ones))
            if ones != part:
                split.append((number, part ^ ones))
        parts = split
    return parts
