"""A node's inputs declared once: name, type, default, range and tooltip in one :class:`Input`,
from which both ``INPUT_TYPES`` and the values the node's function works with are made (no
second default in the function's signature): :func:`input_values` for a function that takes
``**given``, :func:`takes_declared` for one that names its parameters."""
import functools
import inspect
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Input:
    name: str
    kind: object                 # "INT", "BOOLEAN", "STRING", a custom type name, or a list of choices
    default: object = None
    tooltip: str = ""
    low: object = None
    high: object = None
    step: object = None
    advanced: bool = False
    optional: bool = False
    options: dict = field(default_factory=dict)  # any other widget option (multiline, ...)

    def spec(self):
        options = {"default": self.default} if self.default is not None else {}
        for key, value in (("min", self.low), ("max", self.high), ("step", self.step)):
            if value is not None:
                options[key] = value
        options.update(self.options)
        if self.advanced:
            options["advanced"] = True
        options["tooltip"] = self.tooltip
        return (self.kind, options)


def input_types(inputs, hidden=None):
    """ComfyUI's ``INPUT_TYPES`` dict of ``inputs``, in their order (``optional`` only when one
    is; ``hidden``: ComfyUI's hidden inputs, name -> what ComfyUI passes)."""
    declared = {"required": {}, "optional": {}}
    for i in inputs:
        declared["optional" if i.optional else "required"][i.name] = i.spec()
    if not declared["optional"]:
        del declared["optional"]
    if hidden is not None:
        declared["hidden"] = dict(hidden)
    return declared


def takes_declared(inputs):
    """Decorates a node's function whose parameters are named after ``inputs`` but carry no
    default: an input left out (by ComfyUI for an optional one, or by a caller) comes at its
    declared default, an optional input without one as None. ``inspect.signature`` shows the
    declared defaults. A parameter that repeats a default, or an input with no parameter, is a
    TypeError when the class is defined."""
    declared = {i.name: i for i in inputs}

    def decorate(function):
        signature = inspect.signature(function)
        params = signature.parameters
        missing = sorted(set(declared) - set(params))
        repeated = sorted(n for n in declared if n in params and params[n].default is not params[n].empty)
        if missing or repeated:
            raise TypeError(f"{function.__qualname__}: no parameter for input {missing}" if missing else
                            f"{function.__qualname__}: defaults of {repeated} belong in the inputs' declaration")
        defaults = {n: i.default for n, i in declared.items() if i.default is not None or i.optional}
        shown = signature.replace(parameters=[p.replace(default=defaults[n]) if n in defaults else p
                                              for n, p in params.items()])

        @functools.wraps(function)
        def run(*args, **kwargs):
            bound = shown.bind(*args, **kwargs)
            bound.apply_defaults()
            return function(*bound.args, **bound.kwargs)

        run.__signature__ = shown
        return run

    return decorate


def input_values(inputs, given, node):
    """The values ComfyUI passed, each absent one at its declared default; an unknown name is
    one clear error (a workflow from another version of the node)."""
    names = {i.name for i in inputs}
    unknown = sorted(set(given) - names)
    if unknown:
        raise ValueError(f"{node} has no input {', '.join(unknown)}: reload the node (right click, Fix node) "
                         "or remove the input")
    return {i.name: given.get(i.name, i.default) for i in inputs}
