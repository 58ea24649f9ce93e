#!/usr/bin/env python3
"""Convert a (float / fp16-weight / sparse-weight) TFLite model into a PyTorch nn.Module.

The module executes the TFLite graph op by op with PyTorch ops. Layout: every rank-4 runtime
tensor is kept NCHW inside (TFLite is NHWC); ops whose semantics depend on the axis order
(RESHAPE, CONCATENATION, MEAN, PAD, DEPTH_TO_SPACE, broadcasting constants) translate axes.
Model inputs are NCHW; rank-4 outputs are returned NCHW, others as in TFLite.

Constant sub-graphs (DEQUANTIZE of fp16 weights, DENSIFY of sparse weights) are folded at
conversion time; weights are stored as module buffers so the module can be traced to
TorchScript and moved to another device.

Usage:  tflite_to_torch.py MODEL.tflite [--out MODEL.pt]   (see convert_all.py)
"""
import argparse
import math
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tflite_schema as S  # noqa: E402

NHWC_TO_NCHW_AXIS = {0: 0, 1: 2, 2: 3, 3: 1}


# ---------------------------------------------------------------------------------------
# Sparse tensors (TFLite sparsity format) -> dense numpy array
# ---------------------------------------------------------------------------------------
def densify(values: np.ndarray, shape, sp: S.Sparsity) -> np.ndarray:
    """Expand a sparse constant stored in TFLite's sparsity format.

    `values` are the stored (non-zero) values in traversal order. The traversal walks
    len(traversal_order) levels: the first `rank` levels are the (block-)dimensions of the
    dense tensor in the order traversal_order gives, the remaining levels are the inner
    dimensions of blocks, each mapped to an original dimension by block_map. A DENSE level
    has dense_size entries; a SPARSE_CSR level lists, for each position of the level above,
    the index range [segments[p], segments[p+1]) into its indices array.
    """
    rank = len(shape)
    levels = len(sp.traversal_order)
    dm = sp.dim_metadata
    assert len(dm) == levels, "dim_metadata must have one entry per traversal level"
    block_sizes = {}  # original dim -> block size
    for k in range(rank, levels):
        block_sizes[sp.block_map[k - rank]] = dm[k]["dense_size"]

    # Vectorised traversal: keep, per partial path, its coordinates per level and the
    # running position ("prev index") that a dense or sparse level extends.
    pos = np.zeros(1, dtype=np.int64)
    coords = []  # per level: array of indices for each path
    for k in range(levels):
        d = dm[k]
        if d["format"] == "DENSE":
            n = d["dense_size"]
            idx = np.tile(np.arange(n, dtype=np.int64), len(pos))
            rep = np.repeat(np.arange(len(pos)), n)
            pos = pos[rep] * n + idx
        else:
            seg, ind = d["segments"], d["indices"]
            starts, ends = seg[pos], seg[pos + 1]
            counts = ends - starts
            rep = np.repeat(np.arange(len(pos)), counts)
            offs = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
            p = starts[rep] + offs
            idx = ind[p]
            pos = p
        coords = [c[rep] for c in coords] + [idx]
    assert len(pos) == len(values) or pos.max() < len(values), "sparse traversal mismatch"

    dense_coord = [np.zeros(len(pos), dtype=np.int64) for _ in range(rank)]
    for k in range(rank):
        dim = sp.traversal_order[k]
        dense_coord[dim] = coords[k] * block_sizes.get(dim, 1)
    for k in range(rank, levels):
        dim = sp.block_map[k - rank]
        dense_coord[dim] = dense_coord[dim] + coords[k]
    out = np.zeros(shape, dtype=values.dtype)
    out[tuple(dense_coord)] = values[pos]
    return out


# ---------------------------------------------------------------------------------------
# Padding helpers (TF "SAME": the extra pixel goes to the bottom/right)
# ---------------------------------------------------------------------------------------
def same_pad(in_size, k, stride, dilation=1):
    out = (in_size + stride - 1) // stride
    eff_k = (k - 1) * dilation + 1
    total = max((out - 1) * stride + eff_k - in_size, 0)
    return total // 2, total - total // 2


def act_fn(name):
    if name is None:
        return None
    if name == "RELU":
        return F.relu
    if name == "RELU6":
        return lambda x: torch.clamp(x, 0.0, 6.0)
    if name == "RELU_N1_TO_1":
        return lambda x: torch.clamp(x, -1.0, 1.0)
    if name == "TANH":
        return torch.tanh
    raise NotImplementedError(f"fused activation {name}")


# ---------------------------------------------------------------------------------------
# The graph module
# ---------------------------------------------------------------------------------------
class TFLiteModule(torch.nn.Module):
    """Executes a parsed TFLite subgraph with PyTorch ops (see module docstring)."""

    def __init__(self, model: S.Model, output_names=None):
        super().__init__()
        self.m = model
        self.rank = {t.index: len(t.shape) for t in model.tensors}
        self.shape = {t.index: list(t.shape) for t in model.tensors}
        self.consts = {}  # tensor index -> np.ndarray (float32/int) folded constants
        for t in model.tensors:
            c = model.constant(t.index)
            if c is not None:
                self.consts[t.index] = c
        self.steps = []  # (callable, [input ids], output id)
        self._buf_count = 0
        self.input_ids = list(model.inputs)
        self.output_ids = list(model.outputs)
        self.output_names = output_names or [model.tensors[i].name for i in self.output_ids]
        self.op_counts = {}
        for op in model.operators:
            self.op_counts[op.name] = self.op_counts.get(op.name, 0) + 1
            self._build(op)

    # --- buffers -----------------------------------------------------------------------
    def buf(self, array, dtype=torch.float32):
        name = f"b{self._buf_count}"
        self._buf_count += 1
        self.register_buffer(name, torch.as_tensor(np.ascontiguousarray(array)).to(dtype))
        return name

    def const_operand(self, ti, like_rank):
        """A constant used in an elementwise op with a runtime tensor of rank like_rank:
        returns a buffer name holding it broadcast-ready in the internal layout."""
        c = self.consts[ti].astype(np.float32)
        if like_rank == 4 and c.ndim > 0:
            c = c.reshape((1,) * (4 - c.ndim) + c.shape)  # right-aligned NHWC broadcast
            c = np.transpose(c, (0, 3, 1, 2))
        return self.buf(c)

    # --- op construction ----------------------------------------------------------------
    def _build(self, op):
        name = op.name
        ins, outs = op.inputs, op.outputs
        o = op.options
        # constant folding of weight-producing ops
        if all(i < 0 or i in self.consts for i in ins) and name in ("DEQUANTIZE", "DENSIFY"):
            src = self.m.tensors[ins[0]]
            val = self.consts[ins[0]]
            if name == "DENSIFY":
                if src.sparsity is None:
                    val = val.reshape(self.shape[outs[0]])
                else:
                    val = densify(val, self.shape[outs[0]], src.sparsity)
            else:
                val = val.astype(np.float32).reshape(self.shape[outs[0]])
            self.consts[outs[0]] = val
            return
        handler = getattr(self, "_op_" + name, None)
        if handler is None:
            raise NotImplementedError(f"TFLite op {name} is not supported by the converter")
        handler(ins, outs, o, op)

    def add_step(self, fn, ins, out):
        self.steps.append((fn, list(ins), out))

    def _conv_common(self, ins, outs, o, depthwise):
        x_id, w_id = ins[0], ins[1]
        b_id = ins[2] if len(ins) > 2 and ins[2] >= 0 else None
        w = self.consts[w_id].astype(np.float32)
        _, H, W, C = self.shape[x_id]
        if depthwise:
            # [1, KH, KW, C*M] -> [C*M, 1, KH, KW]
            kh, kw = w.shape[1], w.shape[2]
            wt = np.transpose(w, (3, 0, 1, 2))
            groups = C
        else:
            # [O, KH, KW, I] -> [O, I, KH, KW]
            kh, kw = w.shape[1], w.shape[2]
            wt = np.transpose(w, (0, 3, 1, 2))
            groups = 1
        wname = self.buf(wt)
        bname = self.buf(self.consts[b_id].astype(np.float32)) if b_id is not None else None
        sh, sw = o["stride_h"], o["stride_w"]
        dh, dw = o.get("dilation_h_factor", 1), o.get("dilation_w_factor", 1)
        if o["padding"] == "SAME":
            pt, pb = same_pad(H, kh, sh, dh)
            pl, pr = same_pad(W, kw, sw, dw)
        else:
            pt = pb = pl = pr = 0
        sym = pt == pb and pl == pr
        act = act_fn(o["fused_activation_function"])

        def fn(x, _w=wname, _b=bname):
            if sym:
                y = F.conv2d(x, getattr(self, _w), None if _b is None else getattr(self, _b),
                             (sh, sw), (pt, pl), (dh, dw), groups)
            else:
                x = F.pad(x, (pl, pr, pt, pb))
                y = F.conv2d(x, getattr(self, _w), None if _b is None else getattr(self, _b),
                             (sh, sw), 0, (dh, dw), groups)
            return act(y) if act is not None else y

        self.add_step(fn, [x_id], outs[0])

    def _op_CONV_2D(self, ins, outs, o, op):
        self._conv_common(ins, outs, o, depthwise=False)

    def _op_DEPTHWISE_CONV_2D(self, ins, outs, o, op):
        self._conv_common(ins, outs, o, depthwise=True)

    def _op_Convolution2DTransposeBias(self, ins, outs, o, op):
        # MediaPipe custom op: inputs (input, weights [O,KH,KW,I], bias [O]); custom options
        # are a raw TfLiteTransposeConvParams {int padding (1=SAME, 2=VALID), stride_w, stride_h}.
        padding, stride_w, stride_h = struct.unpack("<3i", op.custom_options[:12])
        x_id, w_id, b_id = ins[0], ins[1], ins[2]
        w = self.consts[w_id].astype(np.float32)
        kh, kw = w.shape[1], w.shape[2]
        wname = self.buf(np.transpose(w, (3, 0, 1, 2)))  # -> [I, O, KH, KW]
        bname = self.buf(self.consts[b_id].astype(np.float32))
        _, H, W, _ = self.shape[x_id]
        _, OH, OW, _ = self.shape[outs[0]]
        full_h, full_w = (H - 1) * stride_h + kh, (W - 1) * stride_w + kw
        if padding == 1:  # SAME: output = input * stride, crop the full result
            ct = max(full_h - OH, 0) // 2
            cl = max(full_w - OW, 0) // 2
        else:
            ct = cl = 0
        crop = (full_h, full_w) != (OH, OW)

        def fn(x):
            y = F.conv_transpose2d(x, getattr(self, wname), getattr(self, bname),
                                   (stride_h, stride_w))
            return y[:, :, ct:ct + OH, cl:cl + OW] if crop else y

        self.add_step(fn, [x_id], outs[0])

    def _op_TRANSPOSE_CONV(self, ins, outs, o, op):
        # builtin: inputs (output_shape, weights [O,KH,KW,I], input, [bias])
        w = self.consts[ins[1]].astype(np.float32)
        kh, kw = w.shape[1], w.shape[2]
        wname = self.buf(np.transpose(w, (3, 0, 1, 2)))
        bname = self.buf(self.consts[ins[3]]) if len(ins) > 3 and ins[3] >= 0 else None
        x_id = ins[2]
        _, H, W, _ = self.shape[x_id]
        _, OH, OW, _ = self.shape[outs[0]]
        sh, sw = o["stride_h"], o["stride_w"]
        full_h, full_w = (H - 1) * sh + kh, (W - 1) * sw + kw
        ct = max(full_h - OH, 0) // 2 if o["padding"] == "SAME" else 0
        cl = max(full_w - OW, 0) // 2 if o["padding"] == "SAME" else 0
        act = act_fn(o["fused_activation_function"])

        def fn(x):
            y = F.conv_transpose2d(x, getattr(self, wname),
                                   None if bname is None else getattr(self, bname), (sh, sw))
            y = y[:, :, ct:ct + OH, cl:cl + OW]
            return act(y) if act is not None else y

        self.add_step(fn, [x_id], outs[0])

    def _binary(self, ins, outs, o, torch_fn):
        a, b = ins
        act = act_fn(o.get("fused_activation_function"))
        r = self.rank[outs[0]]
        if a in self.consts or b in self.consts:
            cid, xid = (a, b) if a in self.consts else (b, a)
            cname = self.const_operand(cid, r)
            first_const = a in self.consts

            def fn(x):
                c = getattr(self, cname)
                y = torch_fn(c, x) if first_const else torch_fn(x, c)
                return act(y) if act is not None else y

            self.add_step(fn, [xid], outs[0])
        else:
            def fn(x, y):
                z = torch_fn(x, y)
                return act(z) if act is not None else z

            self.add_step(fn, [a, b], outs[0])

    def _op_ADD(self, ins, outs, o, op):
        self._binary(ins, outs, o, torch.add)

    def _op_MUL(self, ins, outs, o, op):
        self._binary(ins, outs, o, torch.mul)

    def _op_SUB(self, ins, outs, o, op):
        self._binary(ins, outs, o, torch.sub)

    def _op_PAD(self, ins, outs, o, op):
        p = self.consts[ins[1]].astype(np.int64).reshape(-1, 2)
        r = self.rank[ins[0]]
        if r == 4:
            order = [2, 1, 3, 0]  # torch pads from the last NCHW dim: W, H, C, N
        else:
            order = list(range(r - 1, -1, -1))
        pads = []
        for d in order:
            pads += [int(p[d, 0]), int(p[d, 1])]
        while len(pads) >= 2 and pads[-1] == 0 and pads[-2] == 0:
            pads = pads[:-2]

        def fn(x):
            return F.pad(x, pads) if pads else x

        self.add_step(fn, [ins[0]], outs[0])

    def _pool(self, ins, outs, o, kind):
        _, H, W, _ = self.shape[ins[0]]
        kh, kw, sh, sw = o["filter_height"], o["filter_width"], o["stride_h"], o["stride_w"]
        if o["padding"] == "SAME":
            pt, pb = same_pad(H, kh, sh)
            pl, pr = same_pad(W, kw, sw)
        else:
            pt = pb = pl = pr = 0
        act = act_fn(o["fused_activation_function"])
        padded = pt or pb or pl or pr
        count_name = None
        if kind == "avg" and padded:
            # TFLite averages over the valid (unpadded) elements only.
            ones = torch.ones(1, 1, H, W)
            cnt = F.avg_pool2d(F.pad(ones, (pl, pr, pt, pb)), (kh, kw), (sh, sw)) * (kh * kw)
            count_name = self.buf(cnt.numpy())

        def fn(x):
            if kind == "max":
                if padded:
                    x = F.pad(x, (pl, pr, pt, pb), value=float("-inf"))
                y = F.max_pool2d(x, (kh, kw), (sh, sw))
            else:
                if padded:
                    y = F.avg_pool2d(F.pad(x, (pl, pr, pt, pb)), (kh, kw), (sh, sw)) * (kh * kw)
                    y = y / getattr(self, count_name)
                else:
                    y = F.avg_pool2d(x, (kh, kw), (sh, sw))
            return act(y) if act is not None else y

        self.add_step(fn, [ins[0]], outs[0])

    def _op_MAX_POOL_2D(self, ins, outs, o, op):
        self._pool(ins, outs, o, "max")

    def _op_AVERAGE_POOL_2D(self, ins, outs, o, op):
        self._pool(ins, outs, o, "avg")

    def _op_RESIZE_BILINEAR(self, ins, outs, o, op):
        _, H, W, _ = self.shape[ins[0]]
        _, OH, OW, _ = self.shape[outs[0]]
        ac, hp = o["align_corners"], o["half_pixel_centers"]

        def axis(n_in, n_out):
            if ac and n_out > 1:
                scale = (n_in - 1) / (n_out - 1)
            else:
                scale = n_in / n_out
            d = np.arange(n_out, dtype=np.float64)
            src = (d + 0.5) * scale - 0.5 if hp else d * scale
            # TFLite: lower index floored and clamped at 0, upper index clamped at n_in-1
            lo = np.floor(src)
            frac = src - lo
            i0 = np.clip(lo, 0, n_in - 1).astype(np.int64)
            i1 = np.clip(lo + 1, 0, n_in - 1).astype(np.int64)
            if hp:
                # half-pixel: negative source positions use the first pixel only
                neg = src < 0
                frac = np.where(neg, 0.0, frac)
                i0 = np.where(neg, 0, i0)
            return i0, i1, frac.astype(np.float32)

        y0, y1, fy = axis(H, OH)
        x0, x1, fx = axis(W, OW)
        names = [self.buf(a, torch.int64) for a in (y0, y1, x0, x1)]
        fy_n = self.buf(fy.reshape(1, 1, OH, 1))
        fx_n = self.buf(fx.reshape(1, 1, 1, OW))

        def fn(x):
            iy0, iy1, ix0, ix1 = (getattr(self, n) for n in names)
            wy, wx = getattr(self, fy_n), getattr(self, fx_n)
            top = x.index_select(2, iy0)
            bot = x.index_select(2, iy1)
            rows = top + (bot - top) * wy
            left = rows.index_select(3, ix0)
            right = rows.index_select(3, ix1)
            return left + (right - left) * wx

        self.add_step(fn, [ins[0]], outs[0])

    def _op_RESHAPE(self, ins, outs, o, op):
        in_rank = self.rank[ins[0]]
        out_shape = list(self.shape[outs[0]])
        out_rank = len(out_shape)
        # the graph's batch of 1 kept as the input's batch (traced as a size, so the module takes any)
        keeps_batch = out_shape[0] == 1 and self.shape[ins[0]][0] == 1

        def fn(x):
            if in_rank == 4:
                x = x.permute(0, 2, 3, 1)
            y = x.reshape([x.shape[0]] + out_shape[1:] if keeps_batch else out_shape)
            if out_rank == 4:
                y = y.permute(0, 3, 1, 2)
            return y.contiguous()

        self.add_step(fn, [ins[0]], outs[0])

    def _op_CONCATENATION(self, ins, outs, o, op):
        r = self.rank[outs[0]]
        ax = o["axis"] % r
        if r == 4:
            ax = NHWC_TO_NCHW_AXIS[ax]
        act = act_fn(o["fused_activation_function"])
        const_names = {i: self.const_operand(i, r) for i in ins if i in self.consts}
        rt_ins = [i for i in ins if i not in self.consts]

        def fn(*xs):
            it = iter(xs)
            parts = [getattr(self, const_names[i]) if i in const_names else next(it) for i in ins]
            y = torch.cat(parts, ax)
            return act(y) if act is not None else y

        self.add_step(fn, rt_ins, outs[0])

    def _op_LOGISTIC(self, ins, outs, o, op):
        self.add_step(torch.sigmoid, [ins[0]], outs[0])

    def _op_RELU(self, ins, outs, o, op):
        self.add_step(F.relu, [ins[0]], outs[0])

    def _op_RELU6(self, ins, outs, o, op):
        self.add_step(lambda x: torch.clamp(x, 0.0, 6.0), [ins[0]], outs[0])

    def _op_TANH(self, ins, outs, o, op):
        self.add_step(torch.tanh, [ins[0]], outs[0])

    def _op_HARD_SWISH(self, ins, outs, o, op):
        self.add_step(F.hardswish, [ins[0]], outs[0])  # x * relu6(x + 3) / 6

    def _op_PRELU(self, ins, outs, o, op):
        r = self.rank[ins[0]]
        aname = self.const_operand(ins[1], r)

        def fn(x):
            a = getattr(self, aname)
            return torch.where(x >= 0, x, x * a)

        self.add_step(fn, [ins[0]], outs[0])

    def _op_MEAN(self, ins, outs, o, op):
        r = self.rank[ins[0]]
        axes = sorted({int(a) % r for a in np.atleast_1d(self.consts[ins[1]])})
        keep = o["keep_dims"]
        dims = [NHWC_TO_NCHW_AXIS[a] for a in axes] if r == 4 else axes
        out_rank = self.rank[outs[0]]

        def fn(x):
            y = x.mean(dim=dims, keepdim=keep)
            if r == 4 and not keep and out_rank >= 2 and 1 not in dims:
                # channel axis survives: bring the result back to the TFLite axis order
                rest = [d for d in (0, 2, 3, 1) if d not in dims]
                order = sorted(range(len(rest)), key=lambda k: rest[k])
                perm = [order.index(k) for k in range(len(rest))]
                y = y.permute(perm)
            return y

        self.add_step(fn, [ins[0]], outs[0])

    def _op_DEPTH_TO_SPACE(self, ins, outs, o, op):
        bs = o["block_size"]
        _, h, w, c = self.shape[ins[0]]
        oc = c // (bs * bs)

        def fn(x):
            n = x.shape[0]
            # TFLite channel index = (i*bs + j)*oc + c  ("DCR")
            y = x.reshape(n, bs, bs, oc, h, w).permute(0, 3, 4, 1, 5, 2)
            return y.reshape(n, oc, h * bs, w * bs)

        self.add_step(fn, [ins[0]], outs[0])

    def _op_DEQUANTIZE(self, ins, outs, o, op):  # runtime (non-constant) dequantize
        self.add_step(lambda x: x.float(), [ins[0]], outs[0])

    # --- execution ----------------------------------------------------------------------
    def forward(self, x):
        env = {self.input_ids[0]: x}
        for fn, in_ids, out_id in self.steps:
            env[out_id] = fn(*[env[i] for i in in_ids])
        return tuple(env[i] for i in self.output_ids)

    def run_tensors(self, x, ids, start=None):
        """Eager helper (not traced): values of the given TFLite tensor ids (internal layout).
        start: optional {tensor id: value} to begin from intermediate tensors instead of x."""
        env = dict(start) if start else {self.input_ids[0]: x}
        for fn, in_ids, out_id in self.steps:
            if out_id in env or not all(i in env for i in in_ids):
                continue
            env[out_id] = fn(*[env[i] for i in in_ids])
        return {i: env[i] for i in ids}


def load(path, output_names=None):
    with open(path, "rb") as fh:
        model = S.Model(fh.read())
    return TFLiteModule(model, output_names).eval()


def main(argv=None):
    ap = argparse.ArgumentParser(description="convert one .tflite to a traced TorchScript file")
    ap.add_argument("tflite")
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    mod = load(a.tflite)
    shp = mod.shape[mod.input_ids[0]]
    example = torch.rand(shp[0], shp[3], shp[1], shp[2])
    import convert_all  # noqa: E402  (same tracing rules as convert_all: no TF32)

    with torch.no_grad():
        traced = convert_all.trace(mod, example)
    traced.save(a.out)
    print("wrote", a.out, "ops:", mod.op_counts)


if __name__ == "__main__":
    main()
