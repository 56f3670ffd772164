#!/usr/bin/python3
"""Rewrite an F32 GGUF with llama.cpp Q8_0 weights, quantized by lemma's Q8
rule, so llama.cpp and `lemma quantize --type q8` run the same weights.

    bench/gguf_q8_0.py IN_F32.gguf OUT_Q8_0.gguf

Q8_0 (ggml type 8) is blocks of 32 along ne[0]: an F16 scale d, then 32
int8 q. The rule is docs/arithmetic.md's: d = the F16 nearest to amax / 127,
q = round-half-even(w / d) clamped to +-127, 0 where d is 0. Tensors with
two or more dimensions and ne[0] a multiple of 32 are quantized, except the
router (ffn_gate_inp), which lemma keeps too; the rest are copied. For the
tensors the GGUF converter copies unchanged (every projection, expert,
embedding and head), the blocks are those of lemma's Q8 checkpoint, byte
for byte; attn_k_b / attn_v_b are kv_b_proj split per head (k_b
transposed), so their blocks run along another axis. Plain python3 + numpy.
"""
import struct
import sys

import numpy as np

G_F32, G_Q8_0 = 0, 8
T_STR, T_ARR = 8, 9
SCALAR = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}


def read_value(buf, off, t):
    if t == T_STR:
        n = struct.unpack_from("<Q", buf, off)[0]
        return bytes(buf[off + 8:off + 8 + n]), off + 8 + n
    if t == T_ARR:
        et, n = struct.unpack_from("<IQ", buf, off)
        off += 12
        vals = []
        for _ in range(n):
            v, off = read_value(buf, off, et)
            vals.append(v)
        return (et, vals), off
    fmt = "<" + SCALAR[t]
    return struct.unpack_from(fmt, buf, off)[0], off + struct.calcsize(fmt)


def write_value(out, t, v):
    if t == T_STR:
        out += struct.pack("<Q", len(v)) + v
    elif t == T_ARR:
        et, vals = v
        out += struct.pack("<IQ", et, len(vals))
        for x in vals:
            write_value(out, et, x)
    else:
        out += struct.pack("<" + SCALAR[t], v)


def q8_0(w):
    """Rows of a float32 array (last axis a multiple of 32) as Q8_0 bytes."""
    b = w.reshape(-1, 32)
    amax = np.abs(b).max(axis=1)
    d16 = (amax / np.float32(127)).astype(np.float16)
    d = d16.astype(np.float32)
    safe = np.where(d == 0, np.float32(1), d)
    q = np.clip(np.rint(b / safe[:, None]), -127, 127)
    q[d == 0] = 0
    blocks = np.empty((b.shape[0], 34), dtype=np.uint8)
    blocks[:, :2] = d16.view(np.uint8).reshape(-1, 2)
    blocks[:, 2:] = q.astype(np.int8).view(np.uint8)
    return blocks.tobytes()


def main(argv):
    if len(argv) != 2:
        sys.stderr.write(__doc__)
        return 2
    data = np.memmap(argv[0], dtype=np.uint8, mode="r")
    buf = memoryview(data)
    if bytes(buf[:4]) != b"GGUF":
        sys.stderr.write("gguf_q8_0: %s: not a GGUF file\n" % argv[0])
        return 1
    version, n_t, n_kv = struct.unpack_from("<IQQ", buf, 4)
    off = 24
    kvs = []
    align = 32
    for _ in range(n_kv):
        key, off = read_value(buf, off, T_STR)
        t = struct.unpack_from("<I", buf, off)[0]
        v, off = read_value(buf, off + 4, t)
        if key == b"general.alignment":
            align = v
        if key == b"general.file_type":
            v = 7  # LLAMA_FTYPE_MOSTLY_Q8_0
        kvs.append((key, t, v))
    infos = []
    for _ in range(n_t):
        name, off = read_value(buf, off, T_STR)
        nd = struct.unpack_from("<I", buf, off)[0]
        ne = list(struct.unpack_from("<%dQ" % nd, buf, off + 4))
        gt, toff = struct.unpack_from("<IQ", buf, off + 4 + 8 * nd)
        off += 4 + 8 * nd + 12
        infos.append([name, ne, gt, toff])
    base = (off + align - 1) // align * align
    out_data, new_infos, pos = [], [], 0
    quantized = 0
    for name, ne, gt, toff in infos:
        n = int(np.prod(ne))
        if gt == G_F32 and len(ne) >= 2 and ne[0] % 32 == 0 and b"ffn_gate_inp" not in name:
            w = np.frombuffer(buf[base + toff:base + toff + 4 * n], dtype=np.float32)
            blob, nt = q8_0(w), G_Q8_0
            quantized += 1
        else:
            size = {G_F32: 4, 1: 2, 30: 2}.get(gt)
            if size is None:
                sys.stderr.write("gguf_q8_0: tensor %s has ggml type %d; only F32/F16/BF16 inputs\n" % (name, gt))
                return 1
            blob, nt = bytes(buf[base + toff:base + toff + size * n]), gt
        new_infos.append((name, ne, nt, pos))
        out_data.append(blob)
        pos += (len(blob) + align - 1) // align * align
    head = bytearray(b"GGUF" + struct.pack("<IQQ", version, n_t, n_kv))
    for key, t, v in kvs:
        write_value(head, T_STR, key)
        head += struct.pack("<I", t)
        write_value(head, t, v)
    for name, ne, nt, p in new_infos:
        write_value(head, T_STR, name)
        head += struct.pack("<I", len(ne)) + struct.pack("<%dQ" % len(ne), *ne) + struct.pack("<IQ", nt, p)
    head += b"\0" * ((-len(head)) % align)
    with open(argv[1] + ".tmp", "wb") as f:
        f.write(head)
        for blob in out_data:
            f.write(blob)
            f.write(b"\0" * ((-len(blob)) % align))
    import os
    os.replace(argv[1] + ".tmp", argv[1])
    sys.stderr.write("gguf_q8_0: %d of %d tensors to Q8_0 -> %s\n" % (quantized, n_t, argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
