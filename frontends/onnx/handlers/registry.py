"""Which ONNX op types the importer understands, and the function that imports each."""

from __future__ import annotations

from collections.abc import Callable

import onnx

from ..context import ImportContext

Handler = Callable[[ImportContext, onnx.NodeProto], None]
HANDLERS: dict[str, Handler] = {}


def handles(*op_types: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        for op in op_types:
            HANDLERS[op] = fn
        return fn

    return register
