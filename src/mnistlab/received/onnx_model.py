"""An ONNX file as a model predict.py may run: the operators export.py writes (no loops, branches or operators that
make tensors of a size the file chooses), one float input of (N, 1, 28, 28), one output of logits. onnxruntime
runs the graph; any failure there is one line."""

from pathlib import Path
from typing import Callable

import numpy as np

from mnistlab.errors import CheckpointError
from mnistlab.received.files import read_bytes

MAX_ONNX_BYTES = 512 << 20
MAX_NODES = 10_000
OPERATORS = {  # what torch.onnx.export makes of mnistlab's networks, and their plain relatives
    "Add", "AveragePool", "BatchNormalization", "Cast", "Concat", "Constant", "Conv", "Div", "Dropout", "Expand",
    "Flatten", "Gather", "Gemm", "GRU", "Identity", "LSTM", "MatMul", "MaxPool", "Mul", "Relu", "Reshape", "Shape",
    "Sigmoid", "Slice", "Softmax", "Split", "Squeeze", "Sub", "Tanh", "Transpose", "Unsqueeze",
}  # fmt: skip
FLOAT = 1  # onnx.TensorProto.FLOAT


def check_graph(model, path: Path) -> None:
    graph = model.graph
    if model.functions or len(graph.node) > MAX_NODES:
        raise CheckpointError(f"{path}: not an ONNX model of export.py (functions, or over {MAX_NODES} nodes)")
    for node in graph.node:
        if node.domain not in ("", "ai.onnx") or node.op_type not in OPERATORS:
            raise CheckpointError(f"{path}: ONNX operator {node.op_type!r} is not one export.py writes; not run")
        if any(attribute.g.node or attribute.graphs for attribute in node.attribute):
            raise CheckpointError(f"{path}: an ONNX node with a subgraph; not run")
    initializers = {tensor.name for tensor in graph.initializer}
    inputs = [value for value in graph.input if value.name not in initializers]
    if len(inputs) != 1 or len(graph.output) != 1:
        raise CheckpointError(f"{path}: an ONNX model of export.py has one input (images) and one output (logits)")
    tensor = inputs[0].type.tensor_type
    dims = [dim.dim_value if dim.HasField("dim_value") else None for dim in tensor.shape.dim]
    if tensor.elem_type != FLOAT or len(dims) != 4 or dims[1:] != [1, 28, 28]:
        raise CheckpointError(f"{path}: its input is not float32 images (N, 1, 28, 28)")


def read_onnx(path: Path) -> Callable[[np.ndarray], np.ndarray]:
    """A function from float32 images (N, 1, 28, 28) to logits (N, classes)."""
    import onnx
    import onnxruntime

    data = read_bytes(path, MAX_ONNX_BYTES, follow_link=True)
    try:
        model = onnx.load_model_from_string(data)
    except Exception as err:  # protobuf's and onnx's many errors
        raise CheckpointError(f"{path} is not a readable ONNX model ({str(err).splitlines()[0][:160]})") from None
    check_graph(model, path)
    try:
        session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime has no common error class
        raise CheckpointError(f"{path} is not a readable ONNX model ({str(err).splitlines()[0][:160]})") from None
    name = session.get_inputs()[0].name

    def run(images: np.ndarray) -> np.ndarray:
        try:
            logits = np.asarray(session.run(None, {name: images})[0])
        except Exception as err:
            raise CheckpointError(f"{path}: the ONNX model failed ({str(err).splitlines()[0][:160]})") from None
        if logits.ndim != 2 or len(logits) != len(images) or not np.issubdtype(logits.dtype, np.floating):
            raise CheckpointError(f"{path}: the ONNX model does not return logits (N, classes)")
        return logits

    return run
