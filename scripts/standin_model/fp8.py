"""FP8 (e4m3) matrix multiplies for nn.Linear layers: an optional variant (issue 11).

``Fp8Linear`` replaces an ``nn.Linear``. Its weight is quantised once to float8 e4m3fn with one
scale per output channel (``weight_scaling="channel"``) or one per tensor (``"tensor"``); its input
is quantised on every call with a dynamic scale amax / 448 per tensor (``act_scaling="tensor"``) or
per row (``"row"``). The product runs on FP8 tensor cores through ``torch._scaled_mm`` where that
exists (a CUDA device of compute capability >= 8.9 and a torch with float8 dtypes), otherwise
through an emulation that rounds to the same e4m3fn grid by hand (``round_to_e4m3``) and
multiplies in float32: the CPU tests run the same quantisation math on torch 1.13.

What the real path relies on (torch 2.10+ ``aten/src/ATen/native/cuda/ScaledBlas.cpp``):
``torch._scaled_mm(a, b, scale_a, scale_b, bias=, out_dtype=, use_fast_accum=)`` with ``a`` a
row-major [M, K] and ``b`` a column-major [K, N] float8 matrix (on Hopper only that layout; the
transpose of a row-major [N, K] weight is one), K and N multiples of 16, float32 scales that are
either both single-element (tensor-wise) or [M, 1] and [1, N], contiguous (row-wise; the two
kinds do not mix), and a bias in the output dtype (fp16 or bf16; none with a float32 output).

Convert a module after moving it to its device and dtype: ``module.to(dtype)`` would also cast the
float8 weights (float8 counts as a floating-point dtype).
"""
from __future__ import annotations

from typing import Dict, Optional, Tuple, Union

import torch
from torch import Tensor, nn

E4M3_MAX = 448.0            # largest finite e4m3fn value: 1.75 * 2^8
E4M3_MANTISSA_BITS = 3
E4M3_MIN_NORMAL_EXP = -6    # 2^-6 is the smallest normal value; below it subnormals, spaced 2^-9
# A smaller activation amax is quantised as if it were 2^-7, so that 448 / amax (57344 at most)
# stays inside fp16's range (65504) when applied in the activation's own dtype. Only magnitudes
# below ~3e-7 then fall out of e4m3's normal range.
AMAX_FLOOR = 2.0 ** -7
WEIGHT_SCALINGS = ("channel", "tensor")
ACT_SCALINGS = ("tensor", "row")
GEMM_MULTIPLE = 16          # _scaled_mm needs K and N to be multiples of 16


def fp8_matmul_available(device: Union[str, torch.device]) -> bool:
    """True where torch._scaled_mm can run e4m3 products on ``device`` (CUDA, sm_89 or newer)."""
    if not (hasattr(torch, "float8_e4m3fn") and hasattr(torch, "_scaled_mm")):
        return False
    device = torch.device(device)
    if device.type != "cuda" or not torch.cuda.is_available():
        return False
    return torch.cuda.get_device_capability(device) >= (8, 9)


def round_to_e4m3(x: Tensor) -> Tensor:
    """``x`` rounded to the nearest float8 e4m3fn value, as float32: 3 mantissa bits, exponent
    bias 7, round to nearest with ties to even, magnitudes above 448 (and infinities) saturated to
    448, subnormals down to 2^-9 (half of that and below round to zero). NaN stays NaN."""
    x = x.float()
    magnitude = x.abs().clamp(max=E4M3_MAX)
    _, exponent = torch.frexp(magnitude)                      # magnitude = m * 2^exponent, m in [0.5, 1)
    binade = (exponent - 1).clamp(min=E4M3_MIN_NORMAL_EXP)    # subnormals share the lowest binade's spacing
    spacing = torch.exp2((binade - E4M3_MANTISSA_BITS).float())
    rounded = torch.round(magnitude / spacing) * spacing      # torch.round: ties to even, like the hardware
    return torch.copysign(rounded, x)


class Fp8Linear(nn.Module):
    """nn.Linear with e4m3 weights and activations; output in the input's dtype, bias added.

    Buffers: ``weight_q`` [N, K] (float8_e4m3fn on the real path, its values as float32 when
    emulated) and ``weight_scale`` [1, N] float32 (one value repeated with per-tensor scaling), so
    that weight ~= weight_q * weight_scale.T.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 weight_scaling: str = "channel", act_scaling: str = "tensor", fast_accum: bool = True,
                 emulate: bool = True):
        super().__init__()
        if weight_scaling not in WEIGHT_SCALINGS:
            raise ValueError(f"weight_scaling must be one of {WEIGHT_SCALINGS}, got {weight_scaling!r}")
        if act_scaling not in ACT_SCALINGS:
            raise ValueError(f"act_scaling must be one of {ACT_SCALINGS}, got {act_scaling!r}")
        self.in_features, self.out_features = in_features, out_features
        self.weight_scaling, self.act_scaling = weight_scaling, act_scaling
        self.fast_accum, self.emulate = fast_accum, emulate
        q_dtype = torch.float32 if emulate else torch.float8_e4m3fn
        self.register_buffer("weight_q", torch.zeros(out_features, in_features, dtype=q_dtype))
        self.register_buffer("weight_scale", torch.ones(1, out_features))
        self.bias = nn.Parameter(torch.zeros(out_features), requires_grad=False) if bias else None

    @classmethod
    def from_linear(cls, linear: nn.Linear, weight_scaling: str = "channel", act_scaling: str = "tensor",
                    fast_accum: bool = True, emulate: Optional[bool] = None) -> "Fp8Linear":
        """Quantise ``linear``'s weight (emulated unless FP8 products run on its device)."""
        w = linear.weight.detach().float()
        if emulate is None:
            emulate = not fp8_matmul_available(w.device)
        m = cls(linear.in_features, linear.out_features, linear.bias is not None, weight_scaling, act_scaling,
                fast_accum, emulate)
        if weight_scaling == "channel":
            amax = w.abs().amax(dim=1, keepdim=True)           # [N, 1]
        else:
            amax = w.abs().amax().reshape(1, 1)
        scale = amax.clamp_min(1e-12) / E4M3_MAX
        grid = w / scale
        m.weight_q = round_to_e4m3(grid) if emulate else grid.clamp(-E4M3_MAX, E4M3_MAX).to(torch.float8_e4m3fn)
        m.weight_scale = scale.reshape(1, -1).expand(1, linear.out_features).contiguous()
        if linear.bias is not None:
            m.bias = nn.Parameter(linear.bias.detach().clone(), requires_grad=False)
        return m

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, "
                f"weights per {self.weight_scaling}, activations per {self.act_scaling}, "
                f"{'emulated' if self.emulate else 'torch._scaled_mm'}")

    def activation_scale(self, x2: Tensor):
        """(inverse scale in x2's dtype, scale as float32): 0-dim per tensor, [M, 1] per row.
        The scale handed to the product is the exact reciprocal of the (rounded) one applied."""
        if self.act_scaling == "row":
            amax = torch.linalg.vector_norm(x2, float("inf"), dim=1, keepdim=True, dtype=torch.float32)
        else:
            amax = torch.linalg.vector_norm(x2, float("inf"), dtype=torch.float32)
        inverse = (E4M3_MAX / amax.clamp_min(AMAX_FLOOR)).to(x2.dtype)
        return inverse, inverse.float().reciprocal()

    def quantize_input(self, x2: Tensor) -> Tuple[Tensor, Tensor]:
        """[M, K] -> (its e4m3 values: float8, or float32 when emulated; their float32 scale)."""
        inverse, scale_a = self.activation_scale(x2)
        if self.emulate:
            return round_to_e4m3(x2 * inverse), scale_a
        # x2 * inverse is at most 448 * (1 + 2^-8)^2 < 452 (bf16's rounding; fp16's is finer):
        # below 464, where a cast that does not saturate starts giving NaN. No clamp pass needed.
        return (x2 * inverse).to(torch.float8_e4m3fn).contiguous(), scale_a

    def matmul(self, x_q: Tensor, scale_a: Tensor, out_dtype: torch.dtype) -> Tensor:
        """(x_q * scale_a) @ (weight_q * weight_scale.T).T + bias, [M, N] in ``out_dtype``."""
        if self.emulate:  # float32 products and sums, scales and bias applied before rounding
            y = (x_q @ self.weight_q.t()) * scale_a * self.weight_scale
            if self.bias is not None:
                y = y + self.bias.float()
            return y.to(out_dtype)
        if self.weight_q.dtype != torch.float8_e4m3fn:
            raise RuntimeError("Fp8Linear: the float8 weights were cast (module.to(dtype) after conversion); "
                               "convert the module after moving it to its device and dtype")
        if self.weight_scaling == "channel" or self.act_scaling == "row":
            # row-wise kernels: both scales per row / column; a per-tensor one is repeated
            scale_a = scale_a.reshape(-1, 1).expand(x_q.shape[0], 1).contiguous()
            scale_b = self.weight_scale
        else:
            scale_b = self.weight_scale[:, :1]
        fuse_bias = self.bias is not None and out_dtype in (torch.float16, torch.bfloat16)
        y = torch._scaled_mm(x_q, self.weight_q.t(), scale_a=scale_a, scale_b=scale_b,
                             bias=self.bias.to(out_dtype) if fuse_bias else None, out_dtype=out_dtype,
                             use_fast_accum=self.fast_accum)
        if isinstance(y, tuple):  # torch 2.1 - 2.4 also returned the output's amax
            y = y[0]
        if self.bias is not None and not fuse_bias:
            y = y + self.bias.to(out_dtype)
        return y

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-1] != self.in_features:
            raise RuntimeError(f"Fp8Linear: input has {x.shape[-1]} features, the layer takes {self.in_features}")
        x_q, scale_a = self.quantize_input(x.reshape(-1, self.in_features))
        return self.matmul(x_q, scale_a, x.dtype).reshape(*x.shape[:-1], self.out_features)


def convert_linears(module: nn.Module, min_features: int = 64, weight_scaling: str = "channel",
                    act_scaling: str = "tensor", fast_accum: bool = True,
                    emulate: Optional[bool] = None) -> Dict:
    """Replace every plain nn.Linear under ``module`` (in place) by an Fp8Linear.

    Skipped: layers whose in or out features are not multiples of 16 (what _scaled_mm takes) and
    tiny ones (in or out features below ``min_features``: too small for FP8 to pay). Subclasses of
    nn.Linear are left alone (nn.MultiheadAttention reads its out_proj's weight directly).
    Returns {"converted": count, "skipped": count, "skipped_layers": {name: reason}}.
    """
    converted, skipped = 0, {}
    targets = [(parent, name, child, f"{pname}.{name}" if pname else name)
               for pname, parent in module.named_modules()
               for name, child in parent.named_children() if type(child) is nn.Linear]
    for parent, name, linear, full_name in targets:
        k, n = linear.in_features, linear.out_features
        if k % GEMM_MULTIPLE or n % GEMM_MULTIPLE:
            skipped[full_name] = f"{k}x{n}: not multiples of {GEMM_MULTIPLE}"
        elif min(k, n) < min_features:
            skipped[full_name] = f"{k}x{n}: below min_features {min_features}"
        else:
            setattr(parent, name, Fp8Linear.from_linear(linear, weight_scaling, act_scaling, fast_accum, emulate))
            converted += 1
    return {"converted": converted, "skipped": len(skipped), "skipped_layers": skipped}
