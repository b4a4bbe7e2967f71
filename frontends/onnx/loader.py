"""Read an ONNX file into a checked, shape-inferred ModelProto, or fail with an InputFileError /
ModelError that says what is wrong and what to do."""

from __future__ import annotations

import math
import os
from pathlib import Path

import onnx
import onnx.inliner
from google.protobuf.message import DecodeError
from onnx import helper, shape_inference, version_converter

from snnc.compiler.errors import InputFileError, ModelError

MIN_OPSET = 9
MAX_OPSET = 23  # tested up to here; newer opsets the installed onnx knows are accepted too
UPGRADE_TO = 13  # older models are converted up to this opset with onnx's version converter


def read_model(path: str | os.PathLike[str]) -> onnx.ModelProto:
    path = Path(path)
    if not path.exists():
        raise InputFileError(f"{path}: no such file")
    if not path.is_file():
        raise InputFileError(f"{path}: not a file")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except (DecodeError, RuntimeWarning, ValueError, OSError) as exc:
        raise InputFileError(
            f"{path}: not a readable ONNX model ({type(exc).__name__}: {exc}). "
            "Export it again with torch.onnx.export."
        ) from None
    if not model.graph.node and not model.graph.input:
        raise InputFileError(f"{path}: not an ONNX model (no graph inside)")
    _load_external(model, path)
    return model


def _load_external(model: onnx.ModelProto, path: Path) -> None:
    from onnx.external_data_helper import load_external_data_for_model, uses_external_data

    external = [t for t in model.graph.initializer if uses_external_data(t)]
    if not external:
        return
    _check_external_files(external, path)
    try:
        load_external_data_for_model(model, str(path.parent))
    # onnx reports a missing data file, or a location outside the model's folder, as a
    # checker ValidationError rather than an OSError
    except (OSError, ValueError, onnx.checker.ValidationError) as exc:
        raise InputFileError(
            f"{path}: the model keeps weights in external files that cannot be read ({exc}). "
            "Put the external data files next to the model."
        ) from None


def _check_external_files(tensors: list[onnx.TensorProto], path: Path) -> None:
    """Before reading any weights: every data file the tensors name is there and long enough
    (the dynamo exporter writes MODEL.onnx.data beside MODEL.onnx; copies often lose it)."""
    needed: dict[str, int] = {}
    for tensor in tensors:
        entries = {e.key: e.value for e in tensor.external_data}
        location = entries.get("location", "")
        try:
            end = int(entries.get("offset", 0) or 0) + int(entries.get("length", 0) or 0)
        except ValueError:
            end = 0  # onnx's loader reports the bad number
        needed[location] = max(needed.get(location, 0), end)
    for location, end in needed.items():
        where = path.parent / location
        if not location or Path(location).is_absolute() or ".." in Path(location).parts:
            continue  # onnx's loader refuses these with its own reason
        if not where.is_file():
            raise InputFileError(
                f"{path}: the model keeps its weights in the external data file '{location}', "
                f"which is missing (expected at {where}). Copy it next to the model, or export "
                "again with external_data=False to keep the weights inside the .onnx file.")
        if where.stat().st_size < end:
            raise InputFileError(
                f"{path}: the external data file '{location}' ({where}) is truncated: "
                f"{where.stat().st_size} bytes, the model reads up to byte {end}. Copy it "
                "again from where the model was exported.")


def default_opset(model: onnx.ModelProto) -> int:
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return entry.version
    return 1


# Initializers larger than this skip the checker and shape inference, which serialize the whole
# model (VGG-16: 528 MB, twice, ~6 s): they take part as typed graph inputs, which is all either
# needs; numpy_helper.to_array() still checks their data when the importer reads them.
_SET_ASIDE_BYTES = 1 << 20


def _nbytes(tensor: onnx.TensorProto) -> int:
    """Size from the header: reading raw_data, or ByteSize(), would copy the bytes."""
    try:
        itemsize = helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize
    except (KeyError, TypeError, ValueError):  # unknown type: let the checker see it
        return 0
    return itemsize * math.prod(tensor.dims)


def _skeleton(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[onnx.TensorProto]]:
    """A copy of the model without its large initializers (listed as inputs instead), and
    those initializers. The model itself is not changed."""
    big = [t for t in model.graph.initializer if _nbytes(t) > _SET_ASIDE_BYTES]
    if not big:
        return model, []
    skeleton = onnx.ModelProto()
    for field in ("ir_version", "producer_name", "producer_version", "domain",
                  "model_version", "doc_string"):
        setattr(skeleton, field, getattr(model, field))
    skeleton.opset_import.extend(model.opset_import)
    g, src = skeleton.graph, model.graph
    g.name = src.name
    for field in ("node", "input", "output", "value_info", "sparse_initializer"):
        getattr(g, field).extend(getattr(src, field))
    aside = {t.name for t in big}
    g.initializer.extend(t for t in src.initializer if t.name not in aside)
    listed = {i.name for i in src.input}
    g.input.extend(helper.make_tensor_value_info(t.name, t.data_type, list(t.dims))
                   for t in big if t.name not in listed)
    return skeleton, big


def prepare(model: onnx.ModelProto) -> onnx.ModelProto:
    """Check, upgrade old opsets, and run ONNX shape inference."""
    model, aside = _skeleton(model)
    prepared = _check_and_infer(model)
    prepared.graph.initializer.extend(aside)
    return prepared


def _inline_functions(model: onnx.ModelProto) -> onnx.ModelProto:
    """Replace calls of the model's local functions (torch's export_modules_as_functions: one
    function per module class) by their bodies, so that the importer sees plain ONNX ops."""
    if not model.functions:
        return model
    try:
        return onnx.inliner.inline_local_functions(model)
    except Exception as exc:  # the inliner raises bare C++ errors
        names = ", ".join(f"{f.domain}::{f.name}" for f in model.functions)
        raise ModelError(f"the model's local functions ({names}) cannot be inlined ({exc}); "
                         "export it again without export_modules_as_functions") from None


def _check_and_infer(model: onnx.ModelProto) -> onnx.ModelProto:
    opset = default_opset(model)
    if opset > onnx.defs.onnx_opset_version():
        raise ModelError(f"the model uses opset {opset}, newer than this onnx "
                         f"({onnx.__version__}) knows; tested: {MIN_OPSET}-{MAX_OPSET}. "
                         f"Export it again with opset_version={MAX_OPSET}.")
    model = _inline_functions(model)
    try:
        onnx.checker.check_model(model)
    except (onnx.checker.ValidationError, UnicodeDecodeError) as exc:  # bad bytes in names
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "invalid model"
        raise ModelError(f"the ONNX checker rejects this model: {first}") from None
    if opset < MIN_OPSET:
        try:
            model = version_converter.convert_version(model, UPGRADE_TO)
        except Exception as exc:  # the converter raises bare RuntimeErrors
            raise ModelError(
                f"the model uses opset {opset}; snnc supports {MIN_OPSET}-{MAX_OPSET} and could "
                f"not upgrade it ({exc}). Export it again with opset_version={UPGRADE_TO}."
            ) from None
    try:
        return shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
    except Exception as exc:  # inference errors come as several private exception types
        raise ModelError(f"ONNX shape inference failed: {exc}") from None
