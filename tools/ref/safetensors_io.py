"""Minimal safetensors reader/writer plus the FP8 E4M3 block codec of DeepSeek-V3 checkpoints.

Written from the format description in shared/spec/deepseek-v3-architecture.md §7 (no dependency on the
`safetensors` package, which Debian's python3-torch 1.13 environment does not ship).

File layout: 8-byte little-endian u64 N, N bytes of JSON header
  {"__metadata__": {...}, name: {"dtype": str, "shape": [...], "data_offsets": [begin, end]}, ...}
then the raw little-endian tensor bytes; offsets are relative to the first byte after the header.
The writer pads the header with spaces to a multiple of 8 and stores tensors in the order given.

FP8: `F8_E4M3` = float8_e4m3fn (bias 7, no infinities, 0x7F/0xFF are NaN, max finite 448). Weight blocks are
128x128 over [out, in]; `<name>_scale_inv` (F32, [ceil(out/128), ceil(in/128)]) is the dequant MULTIPLIER:
  W[r][c] = fp8_to_float(Q[r][c]) * scale_inv[r // 128][c // 128]        (computed in fp32)
"""

import json
import math
import os
import struct

import numpy as np
import torch

# dtype string -> (bytes per element, numpy dtype used for the raw bytes)
_DTYPES = {
    "F64": (8, np.float64),
    "F32": (4, np.float32),
    "F16": (2, np.float16),
    "BF16": (2, np.int16),  # raw bit patterns; converted through torch.bfloat16
    "F8_E4M3": (1, np.uint8),  # raw codes; decoded through the 256-entry table
    "I64": (8, np.int64),
    "I32": (4, np.int32),
    "I16": (2, np.int16),
    "I8": (1, np.int8),
    "U8": (1, np.uint8),
    "BOOL": (1, np.bool_),
}

FP8_E4M3_MAX = 448.0
FP8_BLOCK = 128


# ----------------------------------------------------------------------------------------------------------------
# FP8 E4M3 (e4m3fn) codec
# ----------------------------------------------------------------------------------------------------------------

def e4m3_table():
    """float32 tensor [256]: the value of every e4m3fn code (NaN for 0x7F and 0xFF)."""
    vals = []
    for code in range(256):
        sign = -1.0 if code & 0x80 else 1.0
        exp = (code >> 3) & 0xF
        man = code & 0x7
        if exp == 0xF and man == 0x7:
            vals.append(float("nan"))
        elif exp == 0:
            vals.append(sign * math.ldexp(man / 8.0, -6))  # subnormal: 2^-6 * m/8
        else:
            vals.append(sign * math.ldexp(1.0 + man / 8.0, exp - 7))
    return torch.tensor(vals, dtype=torch.float32)


_E4M3_TABLE = e4m3_table()
# Non-negative finite magnitudes, code 0x00..0x7E, strictly increasing with the code.
_E4M3_POS = _E4M3_TABLE[:0x7F].to(torch.float64)


def encode_e4m3(x):
    """float tensor -> uint8 tensor of e4m3fn codes.

    Round to nearest, ties to even (even code == even mantissa, also across binade boundaries), saturate at +-448.
    NaN inputs are rejected (weights never contain NaN).
    """
    x = x.to(torch.float64)
    if torch.isnan(x).any():
        raise ValueError("encode_e4m3: NaN input")
    mag = x.abs().clamp(max=FP8_E4M3_MAX).reshape(-1)
    # hi = first code whose value >= mag; lo = hi - 1
    hi = torch.searchsorted(_E4M3_POS, mag, right=False).clamp(max=0x7E)
    lo = (hi - 1).clamp(min=0)
    v_hi = _E4M3_POS[hi]
    v_lo = _E4M3_POS[lo]
    d_hi = v_hi - mag
    d_lo = mag - v_lo
    pick_hi = (d_hi < d_lo) | ((d_hi == d_lo) & (hi % 2 == 0))
    code = torch.where(pick_hi, hi, lo)
    code = torch.where(mag == v_hi, hi, code)  # exact hit (also covers 0 -> code 0)
    sign = (x.reshape(-1) < 0).to(torch.int64) * 0x80
    return (code + sign).to(torch.uint8).reshape(x.shape)


def decode_e4m3(codes):
    """uint8 tensor of e4m3fn codes -> float32 tensor (exact)."""
    return _E4M3_TABLE[codes.to(torch.int64)]


def fp8_block_quantize(w, block=FP8_BLOCK):
    """w: float32 [out, in] -> (codes uint8 [out, in], scale_inv float32 [ceil(out/b), ceil(in/b)]).

    scale_inv = amax(|block|) / 448 (edge blocks implicitly zero-padded, which does not change the amax);
    codes = e4m3(w / scale_inv). An all-zero block gets scale_inv 1.
    """
    out_f, in_f = w.shape
    nb_r, nb_c = -(-out_f // block), -(-in_f // block)
    w = w.to(torch.float32)
    scale_inv = torch.empty(nb_r, nb_c, dtype=torch.float32)
    codes = torch.empty(out_f, in_f, dtype=torch.uint8)
    for i in range(nb_r):
        for j in range(nb_c):
            blk = w[i * block:(i + 1) * block, j * block:(j + 1) * block]
            amax = blk.abs().max()
            s = amax / FP8_E4M3_MAX if amax > 0 else torch.tensor(1.0)
            s = s.to(torch.float32)
            scale_inv[i, j] = s
            codes[i * block:(i + 1) * block, j * block:(j + 1) * block] = encode_e4m3(blk / s)
    return codes, scale_inv


def fp8_block_dequantize(values, scale_inv, block=FP8_BLOCK):
    """values: float32 [out, in] (decoded fp8), scale_inv: [ceil(out/b), ceil(in/b)] -> float32 [out, in]."""
    out_f, in_f = values.shape
    expected = (-(-out_f // block), -(-in_f // block))
    if tuple(scale_inv.shape) != expected:
        raise ValueError(f"scale_inv shape {tuple(scale_inv.shape)} != {expected} for weight {(out_f, in_f)}")
    s = scale_inv.to(torch.float32).repeat_interleave(block, 0).repeat_interleave(block, 1)[:out_f, :in_f]
    return values.to(torch.float32) * s


# ----------------------------------------------------------------------------------------------------------------
# Encoding of one tensor to raw bytes
# ----------------------------------------------------------------------------------------------------------------

def tensor_to_bytes(t, dtype):
    """Encode tensor t as safetensors dtype `dtype`. For F8_E4M3, t must already be uint8 codes."""
    if dtype == "BF16":
        # torch's float32 -> bfloat16 conversion rounds to nearest even.
        raw = t.to(torch.float32).contiguous().to(torch.bfloat16).view(torch.int16).numpy()
    elif dtype == "F8_E4M3":
        if t.dtype != torch.uint8:
            raise TypeError("F8_E4M3 tensors must be passed as uint8 codes (use encode_e4m3 / fp8_block_quantize)")
        raw = t.contiguous().numpy()
    else:
        raw = t.contiguous().numpy().astype(_DTYPES[dtype][1], copy=False)
    return raw.astype(raw.dtype.newbyteorder("<"), copy=False).tobytes()


def bytes_to_tensor(buf, dtype, shape):
    """Decode raw bytes into a torch tensor: float dtypes -> float32 (F8 decoded), integer dtypes kept."""
    np_dtype = np.dtype(_DTYPES[dtype][1]).newbyteorder("<")
    arr = np.frombuffer(buf, dtype=np_dtype).copy().reshape(shape)
    t = torch.from_numpy(arr.astype(np_dtype.newbyteorder("=")))
    if dtype == "BF16":
        return t.view(torch.bfloat16).to(torch.float32)
    if dtype == "F8_E4M3":
        return decode_e4m3(t)
    if dtype in ("F16", "F64"):
        return t.to(torch.float32)
    return t


# ----------------------------------------------------------------------------------------------------------------
# Files
# ----------------------------------------------------------------------------------------------------------------

def write_safetensors(path, tensors, metadata=None):
    """tensors: list of (name, dtype, tensor). Returns the number of data bytes written."""
    header = {"__metadata__": dict(metadata or {"format": "pt"})}
    blobs = []
    offset = 0
    for name, dtype, t in tensors:
        if name in header:
            raise ValueError(f"duplicate tensor name {name}")
        b = tensor_to_bytes(t, dtype)
        n = int(np.prod(t.shape)) * _DTYPES[dtype][0]
        assert len(b) == n, (name, len(b), n)
        header[name] = {"dtype": dtype, "shape": [int(d) for d in t.shape], "data_offsets": [offset, offset + n]}
        blobs.append(b)
        offset += n
    hjson = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hjson += b" " * ((8 - len(hjson) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for b in blobs:
            f.write(b)
    return offset


def read_safetensors_header(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n).decode("utf-8"))
    return header, 8 + n


def read_safetensors(path):
    """-> dict name -> (dtype, tensor); float tensors come back as float32 (BF16/F16/F8 decoded exactly)."""
    header, data_start = read_safetensors_header(path)
    out = {}
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        file_len = f.tell()
        for name, info in header.items():
            if name == "__metadata__":
                continue
            b, e = info["data_offsets"]
            n = int(np.prod(info["shape"])) * _DTYPES[info["dtype"]][0]
            if e - b != n or data_start + e > file_len:
                raise ValueError(f"{path}: tensor {name}: bad data_offsets {info['data_offsets']}")
            f.seek(data_start + b)
            out[name] = (info["dtype"], bytes_to_tensor(f.read(n), info["dtype"], info["shape"]))
    return out


def load_hf_dir(model_dir):
    """Read every tensor of an HF checkpoint directory (single file or sharded with an index).

    -> dict name -> (dtype, tensor) with float32 tensors; FP8 tensors are NOT dequantized here (see
    dequantize_checkpoint).
    """
    index_path = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.exists(index_path):
        with open(index_path) as f:
            index = json.load(f)
        files = sorted(set(index["weight_map"].values()))
        out = {}
        for fn in files:
            part = read_safetensors(os.path.join(model_dir, fn))
            for name, v in part.items():
                if index["weight_map"].get(name) != fn:
                    raise ValueError(f"{fn}: tensor {name} not mapped to this shard in the index")
                out[name] = v
        missing = set(index["weight_map"]) - set(out)
        if missing:
            raise ValueError(f"index names tensors absent from shards: {sorted(missing)[:5]}")
        return out
    return read_safetensors(os.path.join(model_dir, "model.safetensors"))


def dequantize_checkpoint(raw):
    """raw: name -> (dtype, tensor) -> name -> float32 tensor, FP8 weights multiplied by their block scales.

    `<name>_scale_inv` tensors are consumed and not returned.
    """
    out = {}
    for name, (dtype, t) in raw.items():
        if name.endswith("_scale_inv"):
            continue
        if dtype == "F8_E4M3":
            s_name = name + "_scale_inv"
            if s_name not in raw:
                raise ValueError(f"FP8 tensor {name} has no {s_name}")
            out[name] = fp8_block_dequantize(t, raw[s_name][1])
        else:
            out[name] = t.to(torch.float32) if t.is_floating_point() else t
    return out
