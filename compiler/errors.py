"""snnc's own exceptions. Every error a user can cause is one of these, with a message that
says what was found, what is supported, and what to do; the CLI maps each class to an exit code."""

from __future__ import annotations

from typing import Any


class SnncError(Exception):
    """Base class. `exit_code` is what the CLI returns for this kind of failure.
    `pass_name`: the compiler pass it was raised in, set by the pass manager (the message
    stays the user's: it names the ONNX node; the pass is added as a note)."""

    exit_code = 1
    pass_name: str | None = None


class UsageError(SnncError):
    """Bad command-line arguments or option values."""

    exit_code = 2


class InputFileError(SnncError):
    """A file is missing, unreadable, not of the expected format, or not writable."""

    exit_code = 3


def node_label(node: str, op: str, output: str | None = None) -> str:
    """`node 'n4_2' (Clip) -> 'hardtanh_1'`: exporters' node names ('n4_2') are often not
    what a user finds in their model; the output tensor ('hardtanh_1') is."""
    shown = f"node '{node}' ({op})"
    return shown + (f" -> '{output}'" if output and output != node else "")


class ModelError(SnncError):
    """The model is valid ONNX but snnc cannot compile it (names the ONNX node and op)."""

    exit_code = 4

    def __init__(self, message: str, *, node: str | None = None, op: str | None = None,
                 output: str | None = None):
        self.node = node
        self.op = op
        self.output = output
        self.detail = message  # without the node prefix, for re-raising with more context
        prefix = f"{node_label(node, str(op), output)}: " if node is not None else ""
        super().__init__(prefix + message)

    @classmethod
    def at(cls, ir_node: Any, message: str) -> ModelError:
        """An error about an IR node, named by the ONNX node it came from where there is one."""
        name, op = ir_node.source if ir_node.source else (ir_node.name, ir_node.op)
        return cls(message, node=name, op=op)


class UnsupportedOpsError(ModelError):
    """One or more ops have no spiking equivalent; lists every offending node at once."""

    def __init__(self, offenders: list[tuple[str, str]], supported: list[str],
                 outputs: list[str | None] | None = None):
        self.offenders = offenders
        outputs = outputs or [None] * len(offenders)
        lines = "\n".join(f"  - {node_label(name, op, out)}"
                           for (name, op), out in zip(offenders, outputs, strict=True))
        super().__init__(
            f"{len(offenders)} node(s) use ops snnc does not support:\n{lines}\n"
            f"Supported ONNX ops: {', '.join(sorted(supported))}.\n"
            "Replace these layers in the source model (e.g. use ReLU or Clip activations) "
            "and export again."
        )


class DataError(SnncError):
    """Calibration or evaluation data of the wrong shape, dtype or content."""

    exit_code = 5


class ResourceError(SnncError):
    """The network does not fit the target's limits."""

    exit_code = 6


class InternalError(SnncError):
    """A bug in snnc itself; the CLI writes the traceback to a file and says where."""

    exit_code = 70


class BackendError(SnncError):
    """A backend's runtime (Lava) failed while building or running the network; the message
    names the process where it can."""

    exit_code = 70


class PassError(SnncError):
    """A compiler pass cannot run: it is out of order (`missing`: the fact of its contract
    that does not hold, compiler/contracts.py) or the graph breaks one of its rules."""

    exit_code = 4

    def __init__(self, message: str, *, pass_name: str | None = None,
                 missing: str | None = None):
        super().__init__(message)
        self.pass_name = pass_name
        self.missing = missing
