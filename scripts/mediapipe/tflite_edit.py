"""Small TFLite flatbuffer edits used only to verify against the reference runtime.

The reference runtime (tfjs-tflite's WASM TFLite) has no registration for MediaPipe's custom
op Convolution2DTransposeBias when its weights come from a DEQUANTIZE (fp16) node. The
selfie-segmentation check is therefore split in two real-runtime runs:
  1. truncate_at_op(): the original model cut before the custom op (patched in place: the
     operators vector is shortened and the graph output becomes the custom op's input), so
     every original op before it runs unchanged;
  2. build_model(): a new 2-op model [Convolution2DTransposeBias -> LOGISTIC] holding the
     dequantized fp32 weights as constants, which the XNNPACK delegate executes.
Feeding (1)'s output into (2) gives the runtime's end-to-end result.
"""
import struct

import numpy as np
from flatbuffers import builder as fbb

import tflite_schema as S


# ---------------------------------------------------------------------------------------
# in-place patching
# ---------------------------------------------------------------------------------------
def _field_pos(tab: S.T, idx):
    o = tab._off(idx)
    if not o:
        raise ValueError(f"field {idx} not stored in table; cannot patch in place")
    return tab.t.Pos + o


def truncate_at_op(data: bytes, op_index: int):
    """Return a copy of the model that stops before operator op_index (the operators vector is
    shortened in place; op_index and everything after it must be the graph's tail) and whose
    single output is that operator's first input."""
    buf = bytearray(data)
    root = S.T(buf, struct.unpack_from("<I", buf, 0)[0])
    model = S.Model(bytes(data))
    x_id = model.operators[op_index].inputs[0]
    produced_later = {t for o in model.operators[op_index:] for t in o.outputs}
    for o in model.operators[:op_index]:
        assert not (set(o.inputs) & produced_later), "ops after the cut feed earlier ops"
    sg = root.tables(2)[0]
    # subgraph outputs (slot 2) -> [x_id]
    o = sg._off(2)
    vec = sg.t.Vector(o)
    struct.pack_into("<I", buf, vec - 4, 1)
    struct.pack_into("<i", buf, vec, x_id)
    # operators (slot 3): keep the first op_index entries
    o = sg._off(3)
    struct.pack_into("<I", buf, sg.t.Vector(o) - 4, op_index)
    return bytes(buf), x_id


# ---------------------------------------------------------------------------------------
# building a small model from scratch
# ---------------------------------------------------------------------------------------
TYPE_CODE = {np.float32: 0, np.int32: 2}


def build_model(tensors, inputs, outputs, opcodes, ops, description="standin verification"):
    """tensors: [{"shape", "dtype" (np type), "name", "data" (np array or None)}]
    opcodes: [(builtin_code, custom_code or None, version)]
    ops: [{"opcode": i, "inputs": [...], "outputs": [...], "custom_options": bytes or None}]
    """
    b = fbb.Builder(1024)

    def ivec(vals):
        b.StartVector(4, len(vals), 4)
        for v in reversed(vals):
            b.PrependInt32(int(v))
        return b.EndVector()

    def bvec(raw, align=16):
        b.StartVector(1, len(raw), align)
        for v in reversed(raw):
            b.PrependUint8(v)
        return b.EndVector()

    def tvec(offs):
        b.StartVector(4, len(offs), 4)
        for v in reversed(offs):
            b.PrependUOffsetTRelative(v)
        return b.EndVector()

    # buffers: 0 = empty, then one per constant tensor
    buf_offs = []
    b.StartObject(3)
    buf_offs.append(b.EndObject())
    tensor_buffer = []
    for t in tensors:
        if t.get("data") is None:
            tensor_buffer.append(0)
            continue
        raw = np.ascontiguousarray(t["data"], dtype=np.dtype(t["dtype"]).newbyteorder("<"))
        dv = bvec(raw.tobytes())
        b.StartObject(3)
        b.PrependUOffsetTRelativeSlot(0, dv, 0)
        buf_offs.append(b.EndObject())
        tensor_buffer.append(len(buf_offs) - 1)

    t_offs = []
    for t, bi in zip(tensors, tensor_buffer):
        name = b.CreateString(t["name"])
        shape = ivec(t["shape"])
        b.StartObject(8)
        b.PrependUOffsetTRelativeSlot(0, shape, 0)
        b.PrependInt8Slot(1, TYPE_CODE[t["dtype"]], -1)
        b.PrependUint32Slot(2, bi, 0xFFFFFFFF)
        b.PrependUOffsetTRelativeSlot(3, name, 0)
        t_offs.append(b.EndObject())

    op_offs = []
    for op in ops:
        iv, ov = ivec(op["inputs"]), ivec(op["outputs"])
        co = bvec(op["custom_options"], 4) if op.get("custom_options") else None
        bo = None
        if op.get("builtin_options"):
            btype, fields = op["builtin_options"]
            b.StartObject(len(fields))
            for slot, kind, val in fields:
                {"b": b.PrependInt8Slot, "i": b.PrependInt32Slot}[kind](slot, val, -99)
            bo = b.EndObject()
        b.StartObject(7)
        b.PrependUint32Slot(0, op["opcode"], 0xFFFFFFFF)
        b.PrependUOffsetTRelativeSlot(1, iv, 0)
        b.PrependUOffsetTRelativeSlot(2, ov, 0)
        if bo is not None:
            b.PrependUint8Slot(3, btype, 0)
            b.PrependUOffsetTRelativeSlot(4, bo, 0)
        if co is not None:
            b.PrependUOffsetTRelativeSlot(5, co, 0)
            b.PrependInt8Slot(6, 0, -1)
        op_offs.append(b.EndObject())

    tv, inv, outv, opv = tvec(t_offs), ivec(inputs), ivec(outputs), tvec(op_offs)
    sgname = b.CreateString("main")
    b.StartObject(5)
    b.PrependUOffsetTRelativeSlot(0, tv, 0)
    b.PrependUOffsetTRelativeSlot(1, inv, 0)
    b.PrependUOffsetTRelativeSlot(2, outv, 0)
    b.PrependUOffsetTRelativeSlot(3, opv, 0)
    b.PrependUOffsetTRelativeSlot(4, sgname, 0)
    sg = b.EndObject()

    oc_offs = []
    for code, custom, version in opcodes:
        cs = b.CreateString(custom) if custom else None
        b.StartObject(4)
        b.PrependInt8Slot(0, min(code, 127), -1)
        if cs is not None:
            b.PrependUOffsetTRelativeSlot(1, cs, 0)
        b.PrependInt32Slot(2, version, -1)
        b.PrependInt32Slot(3, code, -1)
        oc_offs.append(b.EndObject())

    ocv, sgv, bv = tvec(oc_offs), tvec([sg]), tvec(buf_offs)
    desc = b.CreateString(description)
    b.StartObject(5)
    b.PrependUint32Slot(0, 3, 0xFFFFFFFF)
    b.PrependUOffsetTRelativeSlot(1, ocv, 0)
    b.PrependUOffsetTRelativeSlot(2, sgv, 0)
    b.PrependUOffsetTRelativeSlot(3, desc, 0)
    b.PrependUOffsetTRelativeSlot(4, bv, 0)
    root = b.EndObject()
    b.Finish(root, file_identifier=b"TFL3")
    return bytes(b.Output())


def transpose_conv_tail(model: S.Model, module, op_index, builtin=True):
    """The [Convolution2DTransposeBias -> LOGISTIC] tail of a selfie model as a new model.
    Weights are the converter's folded (dequantized) constants, stored as fp32.
    builtin=False keeps MediaPipe's custom op; builtin=True expresses it as TFLite's builtin
    TRANSPOSE_CONV (v3, with bias input): MediaPipe's op is transpose conv + bias with the
    same OHWI weights and SAME/VALID padding rule."""
    op = model.operators[op_index]
    x_id, w_id, b_id = op.inputs
    y_id = op.outputs[0]
    nxt = [o for o in model.operators if o.inputs and o.inputs[0] == y_id]
    assert len(nxt) == 1 and nxt[0].name == "LOGISTIC", "expected deconv -> LOGISTIC tail"
    tensors = [
        {"shape": model.tensors[x_id].shape, "dtype": np.float32, "name": "x"},
        {"shape": model.tensors[w_id].shape, "dtype": np.float32, "name": "w",
         "data": module.consts[w_id].astype(np.float32)},
        {"shape": model.tensors[b_id].shape, "dtype": np.float32, "name": "b",
         "data": module.consts[b_id].astype(np.float32)},
        {"shape": model.tensors[y_id].shape, "dtype": np.float32, "name": "deconv"},
        {"shape": model.tensors[y_id].shape, "dtype": np.float32,
         "name": model.tensors[nxt[0].outputs[0]].name},
    ]
    if not builtin:
        opcodes = [(32, "Convolution2DTransposeBias", 1), (14, None, 1)]
        ops = [{"opcode": 0, "inputs": [0, 1, 2], "outputs": [3],
                "custom_options": op.custom_options},
               {"opcode": 1, "inputs": [3], "outputs": [4]}]
        return build_model(tensors, [0], [4], opcodes, ops)
    padding, stride_w, stride_h = struct.unpack("<3i", op.custom_options[:12])
    tensors.append({"shape": [4], "dtype": np.int32, "name": "output_shape",
                    "data": np.array(model.tensors[y_id].shape, np.int32)})
    opcodes = [(67, None, 3), (14, None, 1)]
    # TransposeConvOptions (union type 49): padding (SAME=0, VALID=1), stride_w, stride_h
    opts = (49, [(0, "b", 0 if padding == 1 else 1), (1, "i", stride_w), (2, "i", stride_h)])
    ops = [{"opcode": 0, "inputs": [5, 1, 0, 2], "outputs": [3], "builtin_options": opts},
           {"opcode": 1, "inputs": [3], "outputs": [4]}]
    return build_model(tensors, [0], [4], opcodes, ops)
