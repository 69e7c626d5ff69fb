#!/usr/bin/env python3
# Writes the GGUF reader's test fixtures by packing bytes with `struct`, so
# they do not depend on strata's own writer: tests/fixtures/valid/*.gguf (small
# well-formed files) and tests/fixtures/malformed/*.gguf (one defect each)
# plus malformed/manifest.tsv, which says what each must fail with.
#
#   python3 tests/python/make_gguf_fixtures.py            # regenerate in place
#   python3 tests/python/make_gguf_fixtures.py --out DIR  # write elsewhere (tests compare)
#
# The output is deterministic; test_gguf_fixtures.py checks that the committed
# files equal what this script writes.
from __future__ import annotations

import argparse
import os
import struct
import sys
from dataclasses import dataclass, field

# GGUF value type ids.
U8, I8, U16, I16, U32, I32, F32, BOOL, STRING, ARRAY, U64, I64, F64 = range(13)
# ggml tensor type ids used here, with (block elements, block bytes).
GGML_F32, GGML_F16, GGML_Q4_0, GGML_Q8_0, GGML_Q4_K, GGML_BF16 = 0, 1, 2, 8, 12, 30
BLOCK = {GGML_F32: (1, 4), GGML_F16: (1, 2), GGML_Q4_0: (32, 18), GGML_Q8_0: (32, 34), GGML_Q4_K: (256, 144),
         GGML_BF16: (1, 2)}

SCALAR_FMT = {U8: "<B", I8: "<b", U16: "<H", I16: "<h", U32: "<I", I32: "<i", F32: "<f", BOOL: "<?",
              U64: "<Q", I64: "<q", F64: "<d"}

MAX_FIXTURE_BYTES = 4096


def u32(x: int) -> bytes:
    return struct.pack("<I", x)


def u64(x: int) -> bytes:
    return struct.pack("<Q", x)


def gstr(s: bytes | str) -> bytes:
    if isinstance(s, str):
        s = s.encode()
    return u64(len(s)) + s


def scalar(t: int, v) -> bytes:
    return struct.pack(SCALAR_FMT[t], v)


def arr(elem: int, items: list) -> bytes:
    """Array payload (element type, count, elements); nested items are payloads of inner arrays."""
    if elem == STRING:
        body = b"".join(gstr(s) for s in items)
    elif elem == ARRAY:
        body = b"".join(items)
    else:
        body = b"".join(scalar(elem, v) for v in items)
    return u32(elem) + u64(len(items)) + body


def kv(key: bytes | str, vtype: int, payload: bytes) -> bytes:
    return gstr(key) + u32(vtype) + payload


def kv_scalar(key: str, vtype: int, v) -> bytes:
    return kv(key, vtype, scalar(vtype, v))


def kv_str(key: str, v: str) -> bytes:
    return kv(key, STRING, gstr(v))


def tinfo(name: bytes | str, dims: list[int], ttype: int, offset: int) -> bytes:
    return gstr(name) + u32(len(dims)) + b"".join(u64(d) for d in dims) + u32(ttype) + u64(offset)


def tensor_bytes(dims: list[int], ttype: int) -> int:
    be, bb = BLOCK[ttype]
    n = 1
    for d in dims:
        n *= d
    return n // be * bb


def pattern(n: int, seed: int) -> bytes:
    """Deterministic, non-constant filler so a reader that returns the wrong bytes is caught."""
    return bytes((seed * 31 + i * 7 + (i >> 8)) & 0xFF for i in range(n))


@dataclass
class Tensor:
    name: bytes | str
    dims: list[int]
    ttype: int
    offset: int | None = None  # None: next aligned offset
    data: bytes | None = None  # None: pattern bytes of the right size


@dataclass
class Gguf:
    """A GGUF file described field by field; render() packs it, with hooks to break any field."""
    kvs: list[bytes] = field(default_factory=list)
    tensors: list[Tensor] = field(default_factory=list)
    version: int = 3
    magic: bytes = b"GGUF"
    alignment: int = 32
    n_tensors: int | None = None  # override the counts in the header
    n_kv: int | None = None

    def layout(self) -> list[tuple[Tensor, int, bytes]]:
        out, pos = [], 0
        for i, t in enumerate(self.tensors):
            size = tensor_bytes(t.dims, t.ttype) if t.dims and 0 not in t.dims and t.ttype in BLOCK else 0
            data = t.data if t.data is not None else pattern(size, i + 1)
            off = t.offset if t.offset is not None else (pos + self.alignment - 1) // self.alignment * self.alignment
            out.append((t, off, data))
            pos = max(pos, off + len(data))
        return out

    def render(self) -> bytes:
        lay = self.layout()
        head = self.magic + u32(self.version)
        head += u64(len(self.tensors) if self.n_tensors is None else self.n_tensors)
        head += u64(len(self.kvs) if self.n_kv is None else self.n_kv)
        body = head + b"".join(self.kvs) + b"".join(tinfo(t.name, t.dims, t.ttype, off) for t, off, _ in lay)
        body += b"\0" * ((-len(body)) % self.alignment)
        data = bytearray()
        for _, off, d in lay:
            if not d:
                continue
            if off + len(d) > len(data):
                data.extend(b"\0" * (off + len(d) - len(data)))
            data[off:off + len(d)] = d
        return body + bytes(data)

    def header_end(self) -> int:
        """Offset just past the tensor infos (before padding)."""
        lay = self.layout()
        return (24 + sum(len(k) for k in self.kvs) +
                sum(len(tinfo(t.name, t.dims, t.ttype, off)) for t, off, _ in lay))


def base(**kw) -> Gguf:
    """The small well-formed file most malformed fixtures start from."""
    g = Gguf(kvs=[kv_str("general.architecture", "fixture"), kv_str("general.name", "malformed base")],
             tensors=[Tensor("tok_embd.weight", [8, 2], GGML_F32), Tensor("out.weight", [32, 2], GGML_Q8_0)])
    for k, v in kw.items():
        setattr(g, k, v)
    return g


# --- valid files ------------------------------------------------------------

def valid_all_types() -> bytes:
    """v3, default alignment, every metadata value type and several tensor types and ranks."""
    kvs = [
        kv_str("general.architecture", "fixture"),
        kv_str("general.name", "all value types"),
        kv_scalar("test.u8", U8, 200),
        kv_scalar("test.i8", I8, -100),
        kv_scalar("test.u16", U16, 60000),
        kv_scalar("test.i16", I16, -30000),
        kv_scalar("test.u32", U32, 4000000000),
        kv_scalar("test.i32", I32, -2000000000),
        kv_scalar("test.f32", F32, 0.5),
        kv_scalar("test.bool", BOOL, True),
        kv_str("test.string", "h\u00e9llo, gguf"),
        kv_str("test.empty_string", ""),
        kv_scalar("test.u64", U64, 2**63 + 5),
        kv_scalar("test.i64", I64, -(2**62)),
        kv_scalar("test.f64", F64, -1.25),
        kv("test.arr.u8", ARRAY, arr(U8, [0, 1, 255])),
        kv("test.arr.i8", ARRAY, arr(I8, [-128, 0, 127])),
        kv("test.arr.u16", ARRAY, arr(U16, [1, 65535])),
        kv("test.arr.i16", ARRAY, arr(I16, [-32768, 32767])),
        kv("test.arr.u32", ARRAY, arr(U32, [7, 4294967295])),
        kv("test.arr.i32", ARRAY, arr(I32, [-1, 2, -3, 4])),
        kv("test.arr.f32", ARRAY, arr(F32, [1.5, -2.25, 0.0])),
        kv("test.arr.bool", ARRAY, arr(BOOL, [True, False, True])),
        kv("test.arr.u64", ARRAY, arr(U64, [2**64 - 1, 0])),
        kv("test.arr.i64", ARRAY, arr(I64, [-(2**63), 2**63 - 1])),
        kv("test.arr.f64", ARRAY, arr(F64, [3.5, -0.125])),
        kv("test.arr.string", ARRAY, arr(STRING, ["a", "", "<|im_end|>", "\u0120the"])),
        kv("test.arr.empty", ARRAY, arr(I32, [])),
        kv("test.arr.nested", ARRAY, arr(ARRAY, [arr(I32, [1, 2]), arr(I32, [3]), arr(I32, [4, 5, 6])])),
        kv("test.arr.nested_strings", ARRAY, arr(ARRAY, [arr(STRING, ["x", "yz"]), arr(STRING, ["w"])])),
    ]
    tensors = [
        Tensor("token_embd.weight", [4, 3], GGML_F32, data=struct.pack("<12f", *[i * 0.5 - 2 for i in range(12)])),
        Tensor("norm.weight", [8], GGML_F16),
        Tensor("blk.0.ffn_up.weight", [64, 2], GGML_Q8_0),
        Tensor("blk.0.ffn_gate_exps.weight", [256, 1, 2], GGML_Q4_K),
        Tensor("blk.0.attn_q.weight", [2, 2, 2, 2], GGML_BF16),
    ]
    return Gguf(kvs=kvs, tensors=tensors).render()


def valid_aligned64_v2() -> bytes:
    """v2 (same layout as v3 for little-endian files) with general.alignment = 64 and a 3-D expert tensor."""
    kvs = [
        kv_str("general.architecture", "fixture"),
        kv_scalar("general.alignment", U32, 64),
        kv_str("general.name", "v2 aligned to 64"),
    ]
    tensors = [
        Tensor("blk.0.ffn_down_exps.weight", [32, 3, 4], GGML_Q8_0),  # 408 bytes, so the next needs padding
        Tensor("blk.0.ffn_gate_inp.weight", [5, 4], GGML_F32),
        Tensor("output_norm.weight", [7], GGML_F32),
    ]
    return Gguf(kvs=kvs, tensors=tensors, version=2, alignment=64).render()


def valid_invalid_utf8() -> bytes:
    """Well-formed GGUF whose strings are not UTF-8: the format says UTF-8 but
    readers do not validate, so tools must print such strings, not crash."""
    kvs = [
        kv_str("general.architecture", "fixture"),
        kv("test.latin1", STRING, gstr(b"caf\xe9")),
        kv("test.tokens", ARRAY, u32(STRING) + u64(3) + gstr(b"\xff") + gstr(b"\xc3") + gstr("ok")),
        kv(b"test.key\xfe", STRING, gstr("value")),
    ]
    return Gguf(kvs=kvs, tensors=[Tensor(b"blk.0.\xc0.weight", [4], GGML_F32)]).render()


VALID = {
    "all_types_v3.gguf": valid_all_types,
    "aligned64_v2.gguf": valid_aligned64_v2,
    "invalid_utf8_v3.gguf": valid_invalid_utf8,
}


# --- malformed files ----------------------------------------------------------
# Each entry: (file name, builder, status from parse_gguf, status from
# `strata inspect`/GgufModel::open, substrings its message must contain).
# Statuses are runtime/base/status.h code names.

def deep_nested_array(depth: int) -> bytes:
    payload = arr(I32, [1])
    for _ in range(depth - 1):
        payload = arr(ARRAY, [payload])
    return payload


def truncated(cut: int) -> bytes:
    return base().render()[:cut]


def build_malformed() -> list[tuple[str, bytes, str, str, list[str]]]:
    b = base()
    full = b.render()
    kv_start = 24
    ti_start = kv_start + sum(len(k) for k in b.kvs)
    data_start = (b.header_end() + 31) // 32 * 32
    huge = 2**64 - 1
    F = "invalid format"
    U = "unsupported"
    cases: list[tuple[str, bytes, str, str, list[str]]] = []

    def add(name, data, parse_status, msg, open_status=None):
        cases.append((name, data, parse_status, open_status or parse_status, msg))

    add("empty.gguf", b"", F, ["magic", "expected 4 bytes", "got 0"])
    add("bad_magic.gguf", b"GGML" + full[4:], F, ["magic", "expected 'GGUF'", "got 0x4c4d4747"])
    add("version_1.gguf", base(version=1).render(), U, ["version", "expected 2 or 3", "got 1"])
    add("version_4.gguf", base(version=4).render(), F, ["version", "expected 2 or 3", "got 4"])
    # A big-endian file: every integer byte-swapped (the magic is bytes, not swapped).
    be = b"GGUF" + struct.pack(">IQQ", 3, 2, 2) + full[24:]
    add("big_endian.gguf", be, U, ["version", "big-endian", "got 0x03000000"])
    add("huge_n_tensors.gguf", base(n_tensors=2**63).render(), F, ["n_tensors", "expected <=", "got 9223372036854775808"])
    add("huge_n_kv.gguf", base(n_kv=huge).render(), F, ["n_kv", "expected <=", "got 18446744073709551615"])
    add("key_len_max.gguf", full[:kv_start] + u64(huge) + full[kv_start + 8:], F,
        ["kv[0].key length", "got 18446744073709551615"])
    add("key_len_past_eof.gguf", full[:kv_start] + u64(5000) + full[kv_start + 8:], F,
        ["kv[0].key length", "bytes left in file", "got 5000"])
    add("zero_length_key.gguf", base(kvs=[kv("", U32, u32(1))] + b.kvs[1:]).render(), F,
        ["kv[0].key", "expected a non-empty key"])
    # general.name's value length (second kv) claims more than the file holds.
    name_kv = kv_str("general.name", "malformed base")
    bad_name_kv = gstr("general.name") + u32(STRING) + u64(100000) + b"malformed base"
    add("string_value_past_eof.gguf", full.replace(name_kv, bad_name_kv), F,
        ["'general.name'", "length", "got 100000"])
    add("array_len_huge_numeric.gguf",
        base(kvs=b.kvs + [kv("test.arr", ARRAY, u32(U32) + u64(2**62) + u32(1))]).render(), F,
        ["'test.arr' array length", "expected <=", "got 4611686018427387904"])
    add("array_len_huge_string.gguf",
        base(kvs=b.kvs + [kv("tokenizer.ggml.tokens", ARRAY, u32(STRING) + u64(huge) + gstr("a"))]).render(), F,
        ["'tokenizer.ggml.tokens' array length", "got 18446744073709551615"])
    add("array_len_past_eof.gguf",
        base(kvs=b.kvs + [kv("test.arr", ARRAY, u32(I32) + u64(1000) + u32(1))]).render(), F,
        ["'test.arr' array length", "bytes left", "got 1000"])
    add("unknown_value_type.gguf", base(kvs=b.kvs + [kv("test.x", 13, u32(0))]).render(), F,
        ["'test.x' type", "expected a value type id < 13", "got 13"])
    add("unknown_value_type_max.gguf", base(kvs=b.kvs + [kv("test.x", 0xFFFFFFFF, u32(0))]).render(), F,
        ["'test.x' type", "got 4294967295"])
    add("unknown_array_elem_type.gguf", base(kvs=b.kvs + [kv("test.arr", ARRAY, u32(77) + u64(1) + u32(0))]).render(),
        F, ["'test.arr' array type", "got 77"])
    add("nested_array_too_deep.gguf", base(kvs=b.kvs + [kv("test.deep", ARRAY, deep_nested_array(64))]).render(), F,
        ["'test.deep'", "nested at most"])
    add("n_dims_0.gguf", base(tensors=[Tensor("t", [], GGML_F32, offset=0, data=b"")]).render(), F,
        ["tensor[0] 't' n_dims", "expected 1..4", "got 0"])
    add("n_dims_5.gguf", base(tensors=[Tensor("t", [1, 1, 1, 1, 1], GGML_F32)]).render(), F,
        ["tensor[0] 't' n_dims", "expected 1..4", "got 5"])
    add("dim_0.gguf", base(tensors=[Tensor("t", [8, 0], GGML_F32, offset=0, data=b"")]).render(), F,
        ["tensor[0] 't' ne[1]", "got 0"])
    add("dims_product_overflow.gguf",
        base(tensors=[Tensor("t", [2**32, 2**32], GGML_F32, offset=0, data=b"")]).render(), F,
        ["tensor[0] 't' shape", "overflow"])
    add("dim_above_int64.gguf", base(tensors=[Tensor("t", [2**63], GGML_F32, offset=0, data=b"")]).render(), F,
        ["tensor[0] 't' ne[0]", "got 9223372036854775808"])
    add("tensor_bytes_overflow.gguf",
        base(tensors=[Tensor("t", [2**31, 2**31], GGML_F32, offset=0, data=b"")]).render(), F,
        ["tensor[0] 't' size", "overflow"])
    add("row_not_block_multiple.gguf", base(tensors=[Tensor("t", [33, 2], GGML_Q4_0, offset=0, data=b"")]).render(),
        F, ["tensor[0] 't' ne[0]", "multiple of q4_0's block of 32", "got 33"])
    add("tensor_type_99.gguf", base(tensors=[Tensor("t", [8], 99, offset=0, data=b"")]).render(), F,
        ["tensor[0] 't' type", "known ggml type", "got 99"])
    add("tensor_type_4_removed.gguf", base(tensors=[Tensor("t", [8], 4, offset=0, data=b"")]).render(), F,
        ["tensor[0] 't' type", "got 4"])
    add("tensor_offset_past_eof.gguf",
        base(tensors=[Tensor("t", [8], GGML_F32, offset=1 << 20, data=b"")]).render(), F,
        ["tensor 't' offset", "expected", "got"])
    add("tensor_end_past_eof.gguf",
        base(tensors=[Tensor("a", [8], GGML_F32), Tensor("t", [64, 4], GGML_F32, offset=32, data=b"\x01" * 32)]).render(),
        F, ["tensor 't' offset", "expected", "got"])
    add("misaligned_offset.gguf", base(tensors=[Tensor("t", [8], GGML_F32, offset=4, data=b"\x02" * 32)]).render(), F,
        ["tensor 't' offset", "multiple of the alignment 32", "got 4"])
    add("alignment_0.gguf", base(kvs=b.kvs + [kv_scalar("general.alignment", U32, 0)]).render(), F,
        ["general.alignment", "power-of-two u32", "got u32 0"])
    add("alignment_3.gguf", base(kvs=b.kvs + [kv_scalar("general.alignment", U32, 3)]).render(), F,
        ["general.alignment", "power-of-two u32", "got u32 3"])
    add("alignment_wrong_type.gguf", base(kvs=b.kvs + [kv_str("general.alignment", "32")]).render(), F,
        ["general.alignment", "power-of-two u32", "got string"])
    add("alignment_u64.gguf", base(kvs=b.kvs + [kv_scalar("general.alignment", U64, 32)]).render(), F,
        ["general.alignment", "got u64 32"])
    add("duplicate_tensor_names.gguf",
        base(tensors=[Tensor("same", [8], GGML_F32), Tensor("other", [8], GGML_F32),
                      Tensor("same", [8], GGML_F32)]).render(), F,
        ["tensor[2] 'same'", "unique tensor names", "duplicate"])
    add("duplicate_keys.gguf", base(kvs=b.kvs + [kv_str("general.name", "again")]).render(), F,
        ["kv[2] 'general.name'", "unique keys", "duplicate"])
    # Control characters in a hostile key must not reach the terminal raw.
    evil = "evil\n\x1b[31mkey\r\x00end"
    add("duplicate_key_control_chars.gguf", base(kvs=[kv_str(evil, "a"), kv_str(evil, "b")]).render(), F,
        ["duplicate", "evil\\x0a\\x1b[31mkey\\x0d\\x00end"])
    add("zero_length_tensor_name.gguf", base(tensors=[Tensor("", [8], GGML_F32)]).render(), F,
        ["tensor[0].name", "expected a non-empty name"])
    add("tensor_name_too_long.gguf", base(tensors=[Tensor("t", [8], GGML_F32)]).render().replace(
        gstr("t") + u32(1), u64(1 << 20) + b"t" + u32(1)), F, ["tensor[0].name length", "got 1048576"])
    add("overlapping_tensor_data.gguf",
        base(tensors=[Tensor("a", [16], GGML_F32, offset=0), Tensor("b", [16], GGML_F32, offset=32)]).render(), F,
        ["tensor 'b' offset", "overlaps", "expected >= 64", "got 32"])
    add("truncated_in_header.gguf", truncated(12), F, ["n_tensors", "expected 8 bytes at offset 8", "got 4"])
    add("truncated_in_kv.gguf", truncated(ti_start - 5), F, ["kv[1] 'general.name' length", "bytes left in file"])
    # One key and no tensors, so the header's counts fit the few bytes left and the cut is what fails.
    one_kv = Gguf(kvs=[kv_str("general.architecture", "fixture")]).render()
    add("truncated_in_kv_key.gguf", one_kv[:kv_start + 14], F, ["kv[0].key length", "expected <= 6", "got 20"])
    add("truncated_in_kv_type.gguf", one_kv[:kv_start + 8 + 20 + 2], F,
        ["kv[0] 'general.architecture' type", "expected 4 bytes", "got 2", "truncated"])
    add("truncated_in_tensor_info.gguf", truncated(ti_start + 30), F, ["tensor[0] 'tok_embd.weight'", "truncated"])
    add("truncated_in_data.gguf", truncated(data_start + 64 + 20), F, ["tensor 'out.weight' offset", "expected", "got"])
    assert b.header_end() % 32 != 0  # so a cut one byte later ends before the aligned data section
    add("truncated_before_data.gguf", truncated(b.header_end() + 1), F, ["data section", "expected", "got"])
    # Well-formed single files that are not valid models: split keys checked by GgufModel::open only.
    add("split_count_zero.gguf",
        base(kvs=b.kvs + [kv_scalar("split.no", U16, 0), kv_scalar("split.count", U16, 0)]).render(), "ok",
        ["split.count", "expected an integer 1..99999", "got 0"], open_status=F)
    add("split_no_out_of_range.gguf",
        base(kvs=b.kvs + [kv_scalar("split.no", U16, 3), kv_scalar("split.count", U16, 2)]).render(), "ok",
        ["split.no", "expected an integer 0..1", "got 3"], open_status=F)
    add("split_name_mismatch.gguf",
        base(kvs=b.kvs + [kv_scalar("split.no", U16, 0), kv_scalar("split.count", U16, 2)]).render(), "ok",
        ["file name", "expected NAME-00001-of-00002.gguf", "split.count 2"], open_status="invalid argument")
    return cases


def sparse_cases() -> list[tuple[str, bytes, int, list[str]]]:
    """Headers to be extended with a hole to 1 TiB at test time (sparse files cannot be committed):
    the holes read as zeros, which parse as empty strings and arrays, so counts bounded only by the
    file size would let a file with nothing on disk exhaust memory. (name, head, size, needles)."""
    size = 1 << 40
    hdr = lambda n_tensors, n_kv: b"GGUF" + u32(3) + u64(n_tensors) + u64(n_kv)  # noqa: E731
    budget = "MiB allowed for parsed metadata"
    return [
        ("sparse_n_tensors.gguf", hdr(30_000_000_000, 0), size, ["n_tensors", budget]),
        ("sparse_n_kv.gguf", hdr(0, 70_000_000_000), size, ["n_kv", budget]),
        ("sparse_string_value.gguf", hdr(0, 1) + gstr("k") + u32(STRING) + u64(500_000_000_000), size,
         ["kv[0] 'k' length", budget]),
        ("sparse_string_array.gguf", hdr(0, 1) + gstr("k") + u32(ARRAY) + u32(STRING) + u64(60_000_000), size,
         ["kv[0] 'k' array length", budget]),
        ("sparse_nested_array.gguf", hdr(0, 1) + gstr("k") + u32(ARRAY) + u32(ARRAY) + u64(60_000_000), size,
         ["kv[0] 'k' array length", budget]),
    ]


def write_all(out_dir: str) -> list[str]:
    valid_dir = os.path.join(out_dir, "valid")
    bad_dir = os.path.join(out_dir, "malformed")
    os.makedirs(valid_dir, exist_ok=True)
    os.makedirs(bad_dir, exist_ok=True)
    written = []
    for name, fn in VALID.items():
        data = fn()
        assert len(data) <= MAX_FIXTURE_BYTES, (name, len(data))
        with open(os.path.join(valid_dir, name), "wb") as f:
            f.write(data)
        written.append(os.path.join("valid", name))
    lines = ["# file\tparse_gguf status\tGgufModel::open status\tmessage must contain (';'-separated)"]
    for name, data, parse_status, open_status, needles in build_malformed():
        assert len(data) <= MAX_FIXTURE_BYTES, (name, len(data))
        assert all(";" not in n and "\t" not in n for n in needles)
        with open(os.path.join(bad_dir, name), "wb") as f:
            f.write(data)
        written.append(os.path.join("malformed", name))
        lines.append("\t".join([name, parse_status, open_status, ";".join(needles)]))
    with open(os.path.join(bad_dir, "manifest.tsv"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    written.append(os.path.join("malformed", "manifest.tsv"))
    return written


def main() -> int:
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default=os.path.join(here, "..", "fixtures"), help="fixtures root (default tests/fixtures)")
    args = ap.parse_args()
    files = write_all(args.out)
    print(f"wrote {len(files)} files under {os.path.normpath(args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
