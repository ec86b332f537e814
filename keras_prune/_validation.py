"""Argument checks shared by the public API.

Every message names the argument, what was expected, what arrived and, where there
is one, the fix, in the style of Keras's own errors.
"""

import numbers

_SPARSITY_HINT = "A sparsity of 0.8 removes 80% of the weights."


def check_fraction(name, value, *, allow_one=False, hint=_SPARSITY_HINT):
    """Checks that `value` is a real number in [0, 1) (or [0, 1]); `hint` says what it means."""
    upper = "1]" if allow_one else "1)"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"Argument `{name}` must be a number in [0, {upper}. "
            f"Received: {name}={value!r} of type {type(value).__name__}."
        )
    too_high = value > 1 if allow_one else value >= 1
    if value < 0 or too_high:
        raise ValueError(
            f"Argument `{name}` must be in [0, {upper}. Received: {name}={value}. {hint}"
        )
    return float(value)


def check_int(name, value, *, minimum=None, allowed=()):
    """Checks that `value` is an integer >= `minimum` (or one of `allowed`)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(
            f"Argument `{name}` must be an integer. "
            f"Received: {name}={value!r} of type {type(value).__name__}."
        )
    if value in allowed:
        return int(value)
    if minimum is not None and value < minimum:
        extra = f" (or one of {list(allowed)})" if allowed else ""
        raise ValueError(
            f"Argument `{name}` must be >= {minimum}{extra}. Received: {name}={value}."
        )
    return int(value)


def check_int_pair(name, value, *, minimum=1):
    """Checks that `value` is a pair of integers >= `minimum`; returns a tuple."""
    try:
        pair = tuple(value)
    except TypeError:
        pair = None
    if (
        pair is None
        or len(pair) != 2
        or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in pair)
    ):
        raise TypeError(
            f"Argument `{name}` must be a pair of integers, e.g. (1, 4). Received: {name}={value!r}."
        )
    if min(pair) < minimum:
        raise ValueError(
            f"Argument `{name}` must hold integers >= {minimum}. Received: {name}={value!r}."
        )
    return tuple(int(v) for v in pair)
