"""Minimal reader for the TFLite flatbuffer schema (the tables MediaPipe's models use).

Only the public schema facts are used here: table field order (vtable slot = 4 + 2*index; a
union takes two slots, its type byte first), enum values. The flatbuffers runtime
(python3-flatbuffers) does the low-level decoding.
"""
import struct

import numpy as np
from flatbuffers import number_types as NT
from flatbuffers.table import Table

# --- enums -------------------------------------------------------------------------------
TENSOR_TYPES = {0: np.float32, 1: np.float16, 2: np.int32, 3: np.uint8, 4: np.int64,
                6: np.bool_, 7: np.int16, 9: np.int8, 10: np.float64}

BUILTIN = {
    0: "ADD", 1: "AVERAGE_POOL_2D", 2: "CONCATENATION", 3: "CONV_2D", 4: "DEPTHWISE_CONV_2D",
    5: "DEPTH_TO_SPACE", 6: "DEQUANTIZE", 9: "FULLY_CONNECTED", 14: "LOGISTIC",
    17: "MAX_POOL_2D", 18: "MUL", 19: "RELU", 20: "RELU_N1_TO_1", 21: "RELU6", 22: "RESHAPE",
    23: "RESIZE_BILINEAR", 25: "SOFTMAX", 28: "TANH", 32: "CUSTOM", 34: "PAD", 39: "TRANSPOSE",
    40: "MEAN", 41: "SUB", 42: "DIV", 43: "SQUEEZE", 54: "PRELU", 55: "MAXIMUM", 57: "MINIMUM",
    60: "PADV2", 67: "TRANSPOSE_CONV", 97: "RESIZE_NEAREST_NEIGHBOR", 98: "LEAKY_RELU",
    117: "HARD_SWISH", 124: "DENSIFY",
}

ACTIVATIONS = {0: None, 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6", 4: "TANH", 5: "SIGN_BIT"}
PADDING = {0: "SAME", 1: "VALID"}

# Builtin options tables: field name list in schema order, with scalar kinds and defaults.
# kind: b=int8/byte/enum, B=bool, i=int32, iv=[int]
OPTIONS = {
    "CONV_2D": [("padding", "b", 0), ("stride_w", "i", 0), ("stride_h", "i", 0),
                ("fused_activation_function", "b", 0), ("dilation_w_factor", "i", 1),
                ("dilation_h_factor", "i", 1)],
    "DEPTHWISE_CONV_2D": [("padding", "b", 0), ("stride_w", "i", 0), ("stride_h", "i", 0),
                          ("depth_multiplier", "i", 0), ("fused_activation_function", "b", 0),
                          ("dilation_w_factor", "i", 1), ("dilation_h_factor", "i", 1)],
    "MAX_POOL_2D": [("padding", "b", 0), ("stride_w", "i", 0), ("stride_h", "i", 0),
                    ("filter_width", "i", 0), ("filter_height", "i", 0),
                    ("fused_activation_function", "b", 0)],
    "ADD": [("fused_activation_function", "b", 0), ("pot_scale_int16", "B", True)],
    "SUB": [("fused_activation_function", "b", 0), ("pot_scale_int16", "B", True)],
    "MUL": [("fused_activation_function", "b", 0)],
    "DIV": [("fused_activation_function", "b", 0)],
    "CONCATENATION": [("axis", "i", 0), ("fused_activation_function", "b", 0)],
    "RESHAPE": [("new_shape", "iv", None)],
    "RESIZE_BILINEAR": [("new_height", "i", 0), ("new_width", "i", 0),
                        ("align_corners", "B", False), ("half_pixel_centers", "B", False)],
    "RESIZE_NEAREST_NEIGHBOR": [("align_corners", "B", False), ("half_pixel_centers", "B", False)],
    "MEAN": [("keep_dims", "B", False)],
    "DEPTH_TO_SPACE": [("block_size", "i", 0)],
    "FULLY_CONNECTED": [("fused_activation_function", "b", 0), ("weights_format", "b", 0),
                        ("keep_num_dims", "B", False), ("asymmetric_quantize_inputs", "B", False)],
    "LEAKY_RELU": [("alpha", "f", 0.0)],
    "TRANSPOSE_CONV": [("padding", "b", 0), ("stride_w", "i", 0), ("stride_h", "i", 0),
                       ("fused_activation_function", "b", 0)],
}
OPTIONS["AVERAGE_POOL_2D"] = OPTIONS["MAX_POOL_2D"]


# --- low-level table access --------------------------------------------------------------
class T:
    """A flatbuffer table with typed field access by field index."""

    def __init__(self, buf, pos):
        self.t = Table(buf, pos)
        self.buf = buf

    def _off(self, idx):
        return self.t.Offset(4 + 2 * idx)

    def has(self, idx):
        return self._off(idx) != 0

    def scalar(self, idx, flags, default):
        o = self._off(idx)
        return self.t.Get(flags, o + self.t.Pos) if o else default

    def u8(self, idx, d=0): return self.scalar(idx, NT.Uint8Flags, d)
    def i8(self, idx, d=0): return self.scalar(idx, NT.Int8Flags, d)
    def i32(self, idx, d=0): return self.scalar(idx, NT.Int32Flags, d)
    def u32(self, idx, d=0): return self.scalar(idx, NT.Uint32Flags, d)
    def u64(self, idx, d=0): return self.scalar(idx, NT.Uint64Flags, d)
    def f32(self, idx, d=0.0): return self.scalar(idx, NT.Float32Flags, d)
    def bool(self, idx, d=False): return bool(self.scalar(idx, NT.BoolFlags, d))

    def string(self, idx):
        o = self._off(idx)
        return self.t.String(o + self.t.Pos).decode("utf-8") if o else None

    def table(self, idx):
        o = self._off(idx)
        return T(self.buf, self.t.Indirect(o + self.t.Pos)) if o else None

    def union(self, idx):
        o = self._off(idx)
        if not o:
            return None
        return T(self.buf, self.t.Indirect(o + self.t.Pos))

    def vec_len(self, idx):
        o = self._off(idx)
        return self.t.VectorLen(o) if o else 0

    def np_vec(self, idx, dtype):
        """Vector of scalars as a numpy array (copy)."""
        o = self._off(idx)
        if not o:
            return None
        n = self.t.VectorLen(o)
        start = self.t.Vector(o)
        return np.frombuffer(bytes(self.buf[start:start + n * np.dtype(dtype).itemsize]),
                             dtype=np.dtype(dtype).newbyteorder("<")).copy()

    def tables(self, idx):
        o = self._off(idx)
        if not o:
            return []
        n = self.t.VectorLen(o)
        start = self.t.Vector(o)
        return [T(self.buf, self.t.Indirect(start + 4 * i)) for i in range(n)]


def read_options(op_name, tab):
    spec = OPTIONS.get(op_name)
    if spec is None or tab is None:
        return {}
    out = {}
    for i, (name, kind, d) in enumerate(spec):
        if kind == "b":
            out[name] = tab.i8(i, d)
        elif kind == "B":
            out[name] = tab.bool(i, d)
        elif kind == "i":
            out[name] = tab.i32(i, d)
        elif kind == "f":
            out[name] = tab.f32(i, d)
        elif kind == "iv":
            v = tab.np_vec(i, np.int32)
            out[name] = None if v is None else [int(x) for x in v]
    if "padding" in out:
        out["padding"] = PADDING[out["padding"]]
    if "fused_activation_function" in out:
        out["fused_activation_function"] = ACTIVATIONS[out["fused_activation_function"]]
    return out


# --- schema tables -> plain python objects ------------------------------------------------
class Sparsity:
    def __init__(self, tab):
        # SparsityParameters: traversal_order(0), block_map(1), dim_metadata(2)
        self.traversal_order = [int(x) for x in tab.np_vec(0, np.int32)]
        bm = tab.np_vec(1, np.int32)
        self.block_map = [] if bm is None else [int(x) for x in bm]
        self.dim_metadata = []
        for dm in tab.tables(2):
            # DimensionMetadata: format(0) DENSE=0/SPARSE_CSR=1, dense_size(1),
            # array_segments (type 2, value 3), array_indices (type 4, value 5)
            fmt = dm.i8(0, 0)
            entry = {"format": "DENSE" if fmt == 0 else "SPARSE_CSR", "dense_size": dm.i32(1, 0)}
            if fmt == 1:
                entry["segments"] = _index_vector(dm.u8(2, 0), dm.union(3))
                entry["indices"] = _index_vector(dm.u8(4, 0), dm.union(5))
            self.dim_metadata.append(entry)


def _index_vector(kind, tab):
    # SparseIndexVector union: Int32Vector=1, Uint16Vector=2, Uint8Vector=3; each has values(0)
    dtype = {1: np.int32, 2: np.uint16, 3: np.uint8}[kind]
    return tab.np_vec(0, dtype).astype(np.int64)


class Tensor:
    def __init__(self, tab, index):
        # Tensor: shape(0), type(1), buffer(2), name(3), quantization(4), is_variable(5),
        # sparsity(6), shape_signature(7)
        self.index = index
        shp = tab.np_vec(0, np.int32)
        self.shape = [] if shp is None else [int(x) for x in shp]
        self.type = tab.i8(1, 0)
        self.buffer = tab.u32(2, 0)
        self.name = tab.string(3)
        q = tab.table(4)
        self.quantized = False
        if q is not None:
            # QuantizationParameters: min(0), max(1), scale(2), zero_point(3)
            sc = q.np_vec(2, np.float32)
            self.quantized = sc is not None and len(sc) > 0
        sp = tab.table(6)
        self.sparsity = Sparsity(sp) if sp is not None else None

    @property
    def dtype(self):
        return TENSOR_TYPES[self.type]


class Operator:
    def __init__(self, tab, opcodes):
        # Operator: opcode_index(0), inputs(1), outputs(2), builtin_options(type 3, value 4),
        # custom_options(5)
        self.opcode = opcodes[tab.u32(0, 0)]
        self.name = self.opcode[0]
        self.inputs = [int(x) for x in tab.np_vec(1, np.int32)]
        self.outputs = [int(x) for x in tab.np_vec(2, np.int32)]
        self.options = read_options(self.name, tab.union(4) if tab.u8(3, 0) else None)
        co = tab.np_vec(5, np.uint8)
        self.custom_options = None if co is None else bytes(co)


class Model:
    def __init__(self, data: bytes):
        if data[4:8] != b"TFL3":
            raise ValueError("not a TFLite flatbuffer (missing TFL3 identifier)")
        buf = bytearray(data)
        self.raw = buf
        root = T(buf, struct.unpack_from("<I", buf, 0)[0])
        # Model: version(0), operator_codes(1), subgraphs(2), description(3), buffers(4)
        self.version = root.u32(0, 0)
        self.description = root.string(3)
        self.opcodes = []
        for oc in root.tables(1):
            # OperatorCode: deprecated_builtin_code(0) byte, custom_code(1), version(2),
            # builtin_code(3) int32 (the larger of the two codes is the real one)
            code = max(oc.i8(0, 0), oc.i32(3, 0))
            custom = oc.string(1)
            name = custom if code == 32 else BUILTIN.get(code, f"BUILTIN_{code}")
            self.opcodes.append((name, oc.i32(2, 1)))
        self.buffers = []
        for b in root.tables(4):
            # Buffer: data(0) [ubyte], offset(1) ulong, size(2) ulong (for >2 GB models)
            d = b.np_vec(0, np.uint8)
            if d is None and b.u64(1, 0) > 1:
                off, size = b.u64(1, 0), b.u64(2, 0)
                d = np.frombuffer(bytes(buf[off:off + size]), np.uint8)
            self.buffers.append(None if d is None or len(d) == 0 else bytes(d))
        sgs = root.tables(2)
        if len(sgs) != 1:
            raise ValueError(f"expected one subgraph, got {len(sgs)}")
        sg = sgs[0]
        # SubGraph: tensors(0), inputs(1), outputs(2), operators(3), name(4)
        self.tensors = [Tensor(t, i) for i, t in enumerate(sg.tables(0))]
        self.inputs = [int(x) for x in sg.np_vec(1, np.int32)]
        self.outputs = [int(x) for x in sg.np_vec(2, np.int32)]
        self.operators = [Operator(o, self.opcodes) for o in sg.tables(3)]

    def constant(self, ti):
        """Raw constant data of tensor ti as a numpy array in its stored dtype, or None."""
        t = self.tensors[ti]
        data = self.buffers[t.buffer] if t.buffer < len(self.buffers) else None
        if data is None:
            return None
        arr = np.frombuffer(data, dtype=np.dtype(t.dtype).newbyteorder("<")).copy()
        if t.sparsity is None:
            arr = arr.reshape(t.shape)
        return arr
