"""Numbers given to a node are inside the range its INPUT_TYPES declares, and finite.

ComfyUI checks a widget's value against its ``min``/``max``, but not a value that arrives over a
link (an INT or FLOAT output of another node, or an API prompt): ``fps`` NaN, ``feather_px``
infinity or ``short_side`` 10**20 would reach the node and fail deep inside with an
OverflowError or NaN outputs. :func:`install` wraps every node's function once, in the registry,
so each INT and FLOAT input is checked by one rule before the node runs; nodes added later are
covered without a line of their own.
"""
import functools
import inspect
import math
import numbers


def numeric_inputs(cls):
    """``{name: (kind, min, max)}`` of the node's INT and FLOAT inputs."""
    found = {}
    spec = cls.INPUT_TYPES()
    for section in ("required", "optional"):
        for name, entry in spec.get(section, {}).items():
            if isinstance(entry, tuple) and entry and entry[0] in ("INT", "FLOAT"):
                options = entry[1] if len(entry) > 1 else {}
                found[name] = (entry[0], options.get("min"), options.get("max"))
    return found


def check_number(name, value, kind, low=None, high=None):
    """``value`` as the node may use it, or a one-line ValueError naming the input and the range."""
    whole = kind == "INT"
    span = f"{'' if low is None else low}..{'' if high is None else high}"
    bounded = low is not None or high is not None
    wanted = f"{'a whole number' if whole else 'a number'}{f' in {span}' if bounded else ''}"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral if whole else numbers.Real):
        raise ValueError(f"{name} is {value!r}, not {wanted}: connect {'an' if whole else 'a'} {kind} output or "
                         "type a value")
    if not whole and not math.isfinite(float(value)):
        raise ValueError(f"{name} is {value!r}: give {wanted}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{name} {value!r} is outside {span}: give {wanted}")
    return value


def _checked(cls, function):
    signature = inspect.signature(function)
    known = []  # the ranges, read from INPUT_TYPES at the first call (model folders are ready by then)

    @functools.wraps(function)
    def run(self, *args, **kwargs):
        if not known:
            known.append(numeric_inputs(cls))
        ranges = known[0]
        given = signature.bind_partial(self, *args, **kwargs).arguments
        for name, value in given.items():
            if name in ranges:
                check_number(name, value, *ranges[name])
        return function(self, *args, **kwargs)

    run.checks_numbers = True
    return run


def install(classes):
    """Wrap the function of every node class (once) with the number check."""
    for cls in classes:
        function = getattr(cls, cls.FUNCTION)
        if not getattr(function, "checks_numbers", False):
            setattr(cls, cls.FUNCTION, _checked(cls, function))
