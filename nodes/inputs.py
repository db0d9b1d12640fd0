"""A node's inputs declared once: name, type, default, range and tooltip in one :class:`Input`,
from which both ``INPUT_TYPES`` and the values the node's function works with are made (no
second default in the function's signature)."""
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


def input_types(inputs):
    """ComfyUI's ``INPUT_TYPES`` dict of ``inputs``, in their order."""
    declared = {"required": {}, "optional": {}}
    for i in inputs:
        declared["optional" if i.optional else "required"][i.name] = i.spec()
    return declared


def input_values(inputs, given, node):
    """The values ComfyUI passed, each absent one at its declared default; an unknown name is
    one clear error (a workflow from another version of the node)."""
    names = {i.name for i in inputs}
    unknown = sorted(set(given) - names)
    if unknown:
        raise ValueError(f"{node} has no input {', '.join(unknown)}: reload the node (right click, Fix node) "
                         "or remove the input")
    return {i.name: given.get(i.name, i.default) for i in inputs}
