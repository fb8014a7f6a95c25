"""K at the edge of its range: an estimator (or study) whose chosen K is the smallest or largest K
it was allowed says so, because the best K may lie outside the range (e.g. ``gap`` on 117 video
frames chose K=11 = N/10, the top of its default range). One warning line, the range as params
``k_min``/``k_max`` and a 1.0/0.0 metric ``k_at_bound`` on the cell."""

from __future__ import annotations

K_SMALLEST = 2  # no clustering has fewer clusters: a range starting here cannot be widened downwards


def k_range(space) -> tuple[int, int] | None:
    """(low, high) of the K swept, or None when K was not searched (fixed in the spec, HDBSCAN)."""
    for p in space:
        if p.name == "k" and p.choices is None:
            return p.low, p.high
    return None


def bound_record(chosen_k: int, space, who: str, log) -> tuple[dict, dict]:
    """(params, metrics) of the chosen K against its range; the warning line through ``log``."""
    found = k_range(space)
    if found is None or chosen_k is None:
        return {}, {}
    low, high = found
    at_bound = high > low and chosen_k in (low, high)
    if at_bound:
        if chosen_k == high:
            hint = f"the top of its range {low}..{high}; widen it with --tune k_max=N"
        elif low > K_SMALLEST:
            hint = f"the bottom of its range {low}..{high}; widen it with --tune k_min=N"
        else:
            hint = f"the bottom of its range {low}..{high}, the fewest clusters there are: it sees no finer structure"
        log(f"warning: {who} chose k={chosen_k}, {hint}")
    return {"k_min": low, "k_max": high}, {"k_at_bound": float(at_bound)}
