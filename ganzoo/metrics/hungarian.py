"""The Hungarian algorithm (Kuhn-Munkres, O(n^3) with potentials) for a square cost matrix, no scipy."""

from __future__ import annotations

import math
from collections.abc import Sequence


def hungarian(cost: Sequence[Sequence[float]]) -> list[int]:
    """The assignment of least total cost: `result[i]` is the column given to row i (a permutation).

    `cost` is an n x n matrix (lists, or anything indexable such as a tensor converted with
    `.tolist()`). To maximise a score (e.g. counts), pass its negation."""
    n = len(cost)
    if any(len(row) != n for row in cost):
        raise ValueError(f"hungarian needs a square cost matrix (got {n} rows of lengths "
                         f"{sorted({len(row) for row in cost})})")
    if n == 0:
        return []
    a = [[float(x) for x in row] for row in cost]
    # 1-based arrays: u/v row/column potentials, p[j] = row matched to column j (0 = none), way = path
    u, v = [0.0] * (n + 1), [0.0] * (n + 1)
    p, way = [0] * (n + 1), [0] * (n + 1)
    for i in range(1, n + 1):
        p[0], j0 = i, 0
        minv, used = [math.inf] * (n + 1), [False] * (n + 1)
        while True:
            used[j0] = True
            i0, delta, j1 = p[j0], math.inf, 0
            for j in range(1, n + 1):
                if not used[j]:
                    cur = a[i0 - 1][j - 1] - u[i0] - v[j]
                    if cur < minv[j]:
                        minv[j], way[j] = cur, j0
                    if minv[j] < delta:
                        delta, j1 = minv[j], j
            for j in range(n + 1):
                if used[j]:
                    u[p[j]] += delta
                    v[j] -= delta
                else:
                    minv[j] -= delta
            j0 = j1
            if p[j0] == 0:
                break
        while j0:  # augment along the path
            j1 = way[j0]
            p[j0] = p[j1]
            j0 = j1
    result = [0] * n
    for j in range(1, n + 1):
        result[p[j] - 1] = j - 1
    return result
