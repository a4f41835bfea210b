"""The small learned networks (ARM, upsampler, modulation) as quantised integers.

Each module is quantised with its own step 2^-frac (chosen by an RD search in ``train``). A
network set is coded (group header version 5, docs/FORMAT.md 3.1) as one range-coder stream,
each tensor with the Laplace model of the fewest bits (``entropy.ParameterModel``); group headers
of versions 2-4 coded each module with signed exp-Golomb of an order chosen per module.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np
import torch

from ..model.arm import EXACT_SUM_LIMIT, N_CONTEXT, Arm, IntegerArm
from ..model.config import ModelConfig
from .entropy import (ParameterModel, best_exp_golomb_order, best_parameter_model, decode_parameters,
                      encode_parameters, exp_golomb_decode, exp_golomb_encode, parameter_code_length)
from ..errors import FormatError
from ..model.latents import UPSAMPLE_KERNEL

MODULES = ("arm", "upsampler", "modulation")
MIN_FRAC, MAX_FRAC = 0, 12
#: quantised parameters are bounded so that exact integer evaluation cannot overflow 2^53
MAX_PARAM = 1 << 16


@dataclass(frozen=True)
class QuantizedModule:
    frac: int
    tensors: tuple[np.ndarray, ...]  # int64, in the order of ``module_shapes``

    def float_tensors(self) -> list[np.ndarray]:
        return [t.astype(np.float64) / (1 << self.frac) for t in self.tensors]

    def exact(self) -> tuple[np.ndarray, ...]:
        """The integers as float64 arrays (for exact evaluation)."""
        return tuple(t.astype(np.float64) for t in self.tensors)


@dataclass(frozen=True)
class QuantizedNetworks:
    arm: QuantizedModule
    upsampler: QuantizedModule
    modulation: QuantizedModule

    def module(self, name: str) -> QuantizedModule:
        return getattr(self, name)

    @property
    def arm_temporal(self) -> int:
        return arm_taps(self.arm)

    def integer_arm(self) -> IntegerArm:
        return integer_arm(self.arm)


def module_shapes(config: ModelConfig, name: str) -> list[tuple[int, ...]]:
    a, m, n = config.arm_hidden, config.mod_hidden, config.n_grids
    if name == "arm":
        return [(a, N_CONTEXT + config.arm_temporal), (a,), (a, a), (a,), (2, a), (2,)]
    if name == "upsampler":
        return [(UPSAMPLE_KERNEL, UPSAMPLE_KERNEL)]
    if name == "modulation":
        return [(m, n), (m,), (3, m), (3,), (3, 3, 3, 3), (3,), (3, 3, 3, 3), (3,)]
    raise KeyError(name)


def module_parameters(model: torch.nn.Module, name: str) -> list[torch.Tensor]:
    """The float parameters of a FrameModel module, in the order of ``module_shapes``."""
    if name == "arm":
        return arm_parameters(model.arm)
    if name == "upsampler":
        return [model.up_kernel]
    if name == "modulation":
        mod = model.modulation
        return [mod.fc0.weight, mod.fc0.bias, mod.fc1.weight, mod.fc1.bias,
                mod.res2.weight, mod.res2.bias, mod.res3.weight, mod.res3.bias]
    raise KeyError(name)


def integer_arm(arm: QuantizedModule) -> IntegerArm:
    """A quantised ARM module in its exact integer form."""
    return IntegerArm(*arm.exact(), arm.frac)


def arm_taps(arm: QuantizedModule) -> int:
    """A quantised ARM's temporal taps: its first layer's inputs beyond the 24 spatial neighbours."""
    return arm.tensors[0].shape[1] - N_CONTEXT


def arm_parameters(arm: Arm) -> list[torch.Tensor]:
    """A float ARM's parameters in the order of ``module_shapes``."""
    return [arm.fc1.weight, arm.fc1.bias, arm.fc2.weight, arm.fc2.bias, arm.fc3.weight, arm.fc3.bias]


def quantize_module(params: list[torch.Tensor], frac: int) -> QuantizedModule:
    scale = float(1 << frac)
    tensors = tuple(
        np.clip(np.round(p.detach().cpu().double().numpy() * scale), -MAX_PARAM, MAX_PARAM).astype(np.int64)
        for p in params
    )
    return QuantizedModule(frac, tensors)


def load_module(model: torch.nn.Module, name: str, module: QuantizedModule) -> None:
    """Overwrite a FrameModel's float parameters with the dequantised values."""
    with torch.no_grad():
        for param, values in zip(module_parameters(model, name), module.float_tensors()):
            param.copy_(torch.from_numpy(values).to(param))


def module_bits(module: QuantizedModule) -> float:
    """A module's share of its network set's code (docs/FORMAT.md 3.1, version 5): its step
    byte, a model byte and the coded bits of each tensor; the set's stream length and termination
    (about 32 bits) are left out, as they are the same whatever the modules hold."""
    return 8 + sum(8 + parameter_code_length(t, best_parameter_model(t)) for t in module.tensors)


def _tensors_in_order(nets: QuantizedNetworks) -> list[np.ndarray]:
    return [t for name in MODULES for t in nets.module(name).tensors]


def set_to_bytes(nets: QuantizedNetworks) -> bytes:
    """Version 5: each module's frac (u8); one model byte per tensor; u16 count of 32-bit words;
    the tensors' range-coder stream."""
    tensors = _tensors_in_order(nets)
    models = [best_parameter_model(t) for t in tensors]
    code = encode_parameters(tensors, models)
    if len(code) // 4 >= 1 << 16:
        raise ValueError(f"network parameters take {len(code)} bytes, beyond the group header's u16 word count")
    fracs = bytes(nets.module(name).frac for name in MODULES)
    return fracs + bytes(m.to_byte() for m in models) + struct.pack("<H", len(code) // 4) + code


def set_from_bytes(data: bytes, config: ModelConfig) -> tuple[QuantizedNetworks, int]:
    """Inverse of ``set_to_bytes``: the networks and the number of bytes consumed."""
    shapes = {name: module_shapes(config, name) for name in MODULES}
    all_shapes = [shape for name in MODULES for shape in shapes[name]]
    head = len(MODULES) + len(all_shapes) + 2
    if len(data) < head:
        raise FormatError("group header: network parameters truncated")
    fracs = data[: len(MODULES)]
    for name, frac in zip(MODULES, fracs):
        if not MIN_FRAC <= frac <= MAX_FRAC:
            raise FormatError(f"group header: {name} quantisation step 2^-{frac} out of range")
    models = [ParameterModel.from_byte(b, "group header") for b in data[len(MODULES): head - 2]]
    (n_words,) = struct.unpack_from("<H", data, head - 2)
    end = head + 4 * n_words
    if end > len(data):
        raise FormatError("group header: network parameters truncated")
    tensors = iter(decode_parameters(data[head:end], all_shapes, models, MAX_PARAM, "group header: parameters"))
    modules = {name: QuantizedModule(frac, tuple(next(tensors) for _ in shapes[name]))
               for name, frac in zip(MODULES, fracs)}
    return _checked(QuantizedNetworks(**modules)), end


def to_bytes(nets: QuantizedNetworks) -> bytes:
    """Group header versions 2-4, per module: frac (u8), exp-Golomb order (u8), code length (u32 LE), code."""
    out = bytearray()
    for name in MODULES:
        module = nets.module(name)
        values = np.concatenate([t.ravel() for t in module.tensors])
        k = best_exp_golomb_order(values)
        code = exp_golomb_encode(values, k)
        out += struct.pack("<BBI", module.frac, k, len(code)) + code
    return bytes(out)


def from_bytes(data: bytes, config: ModelConfig) -> tuple[QuantizedNetworks, int]:
    """Returns the networks and the number of bytes consumed."""
    pos, modules = 0, {}
    for name in MODULES:
        if pos + 6 > len(data):
            raise FormatError(f"group header: {name} parameters truncated")
        frac, k, length = struct.unpack_from("<BBI", data, pos)
        pos += 6
        if not MIN_FRAC <= frac <= MAX_FRAC or k > 15:
            raise FormatError(f"group header: {name} quantisation step 2^-{frac} / order {k} out of range")
        if length > len(data) - pos:
            raise FormatError(f"group header: {name} parameters truncated")
        shapes = module_shapes(config, name)
        count = sum(int(np.prod(s)) for s in shapes)
        values, used = exp_golomb_decode(data[pos : pos + length], count, k, f"group header: {name}")
        if used != length:
            raise FormatError(f"group header: {name} parameter code has {length - used} stray bytes")
        if np.any(np.abs(values) > MAX_PARAM):
            raise FormatError(f"group header: {name} parameter out of range")
        pos += length
        tensors, start = [], 0
        for shape in shapes:
            size = int(np.prod(shape))
            tensors.append(values[start : start + size].reshape(shape))
            start += size
        modules[name] = QuantizedModule(frac, tuple(tensors))
    return _checked(QuantizedNetworks(**modules)), pos


def _checked(nets: QuantizedNetworks) -> QuantizedNetworks:
    # beyond this bound float64 would round the ARM's sums and decoders could disagree (FORMAT.md 3.7)
    if nets.integer_arm().largest_sum() >= EXACT_SUM_LIMIT:
        raise FormatError("group header: ARM weights whose sums could reach 2^50, beyond exact arithmetic")
    return nets
