"""Edge cases of the safetensors header, judged by the reference reader (Hugging Face's
`safetensors` package): each case is a small file holding one F32 tensor "x" of shape [1] (4 data
bytes) under a header written by hand; the reference's verdict (accepted, or rejected with its
message) goes into manifest.json. The Swift reader must reject every case the reference rejects and
accept every case it accepts (SafeTensorsTests). Files end in .case so that nothing else mistakes
them for fixtures.

Beside them, every single-byte corruption of one richer file (corruption_base.case: three tensors
of three dtypes and a metadata entry) by each of five bytes (NUL, '"', '9', '}', 0xFF) at every
position of its length prefix and header, also judged by the reference: corruptions.json holds,
per (position, byte), whether it accepts the file and, when it does, the metadata and every
tensor's dtype, shape and values, so the Swift reader must agree on the verdict and on the numbers.

And every byte class of a JSON string: a tensor name holding each byte 0x00-0xFF raw, each byte
after a backslash, \\u escapes (surrogate pairs, lone halves) and UTF-8 sequences (valid, overlong,
surrogates, past U+10FFFF, truncated, stray continuation bytes): strings.json holds each name's
bytes (hex), the reference's verdict and, when accepted, the name it decodes.
"""
import json
import os
import struct

import numpy as np
from safetensors import safe_open

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "headers")
ENTRY = '"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}'
DATA = struct.pack("<f", 1.5)

# name -> raw header bytes (the 8-byte length and the data are added around them)
CASES = {
    "valid": "{" + ENTRY + "}",
    "valid_spaces_padding": "{" + ENTRY + "}    ",
    "valid_whitespace_inside": '{ "x" : { "dtype" : "F32" , "shape" : [ 1 ] , "data_offsets" : [ 0 , 4 ] } }',
    "valid_newlines": '{\n"x":\n{"dtype":"F32",\n"shape":[1],"data_offsets":[0,4]}\n}',
    "valid_escaped_key": '{"\\u0078":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}',
    "valid_metadata": '{"__metadata__":{"a":"b"},' + ENTRY + "}",
    "valid_field_order": '{"x":{"data_offsets":[0,4],"shape":[1],"dtype":"F32"}}',
    "valid_unknown_field": '{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"extra":1}}',
    "valid_exponent_free_big": "{" + ENTRY + "}" + " " * 64,
    "bom": "\ufeff{" + ENTRY + "}",
    "leading_space": " {" + ENTRY + "}",
    "trailing_comma_object": "{" + ENTRY + ",}",
    "trailing_comma_entry": '{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4],}}',
    "trailing_comma_array": '{"x":{"dtype":"F32","shape":[1,],"data_offsets":[0,4]}}',
    "float_shape": '{"x":{"dtype":"F32","shape":[1.0],"data_offsets":[0,4]}}',
    "float_offset": '{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4.0]}}',
    "exponent_offset": '{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4e0]}}',
    "negative_zero_offset": '{"x":{"dtype":"F32","shape":[1],"data_offsets":[-0,4]}}',
    "negative_shape": '{"x":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}',
    "plus_sign": '{"x":{"dtype":"F32","shape":[+1],"data_offsets":[0,4]}}',
    "leading_zero": '{"x":{"dtype":"F32","shape":[01],"data_offsets":[0,4]}}',
    "huge_integer": '{"x":{"dtype":"F32","shape":[18446744073709551616],"data_offsets":[0,4]}}',
    "duplicate_field": '{"x":{"dtype":"F32","dtype":"F32","shape":[1],"data_offsets":[0,4]}}',
    "duplicate_tensor": "{" + ENTRY + "," + ENTRY + "}",
    "three_offsets": '{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4,4]}}',
    "reversed_offsets": '{"x":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}}',
    "lowercase_dtype": '{"x":{"dtype":"f32","shape":[1],"data_offsets":[0,4]}}',
    "missing_shape": '{"x":{"dtype":"F32","data_offsets":[0,4]}}',
    "shape_string": '{"x":{"dtype":"F32","shape":"1","data_offsets":[0,4]}}',
    "shape_bool": '{"x":{"dtype":"F32","shape":[true],"data_offsets":[0,4]}}',
    "metadata_number": '{"__metadata__":{"a":1},' + ENTRY + "}",
    "metadata_null": '{"__metadata__":null,' + ENTRY + "}",
    "metadata_nested": '{"__metadata__":{"a":{"b":"c"}},' + ENTRY + "}",
    "not_an_object": "[" + ENTRY.split(":", 1)[1] + "]",
    "nan_literal": '{"x":{"dtype":"F32","shape":[NaN],"data_offsets":[0,4]}}',
    "comment": '{/* c */' + ENTRY + "}",
    "single_quotes": "{'x':{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
    "nul_padding": "{" + ENTRY + "}\u0000\u0000\u0000\u0000",
    "tab_padding": "{" + ENTRY + "}\t",
    "unescaped_control": '{"x\u0001":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}',
    "lone_surrogate": '{"\\ud800":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}',
    "entry_not_object": '{"x":[1]}',
    "empty_key": '{"":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}',
}


def verdict(path):
    try:
        with safe_open(path, framework="numpy") as handle:
            for name in handle.keys():
                handle.get_tensor(name)
            handle.metadata()
        return {"accepted": True}
    except Exception as error:  # the reference's own message, for the reader of the manifest
        return {"accepted": False, "reference_error": f"{type(error).__name__}: {error}"[:200]}


BASE_HEADER = ('{"__metadata__":{"note":"base"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},'
               '"b":{"dtype":"I32","shape":[1,1],"data_offsets":[8,12]},"c":{"dtype":"F64","shape":[],"data_offsets":[12,20]}}')
BASE_DATA = struct.pack("<ff", 1.5, -2.0) + struct.pack("<i", 7) + struct.pack("<d", 0.25)
REPLACEMENTS = [0x00, 0x22, 0x39, 0x7D, 0xFF]


def contents(path):
    """The reference's reading of a file: metadata and every tensor (dtype, shape, values)."""
    with safe_open(path, framework="numpy") as handle:
        tensors = {}
        for name in sorted(handle.keys()):
            value = handle.get_tensor(name)
            tensors[name] = {"dtype": str(value.dtype), "shape": list(value.shape),
                             "values": [float(v) for v in np.asarray(value, dtype=np.float64).reshape(-1)]}
        return {"metadata": handle.metadata() or {}, "tensors": tensors}


def corruptions():
    raw = BASE_HEADER.encode()
    base = struct.pack("<Q", len(raw)) + raw + BASE_DATA
    with open(os.path.join(HERE, "corruption_base.case"), "wb") as handle:
        handle.write(base)
    scratch = os.path.join(HERE, "corruption.tmp")
    cases = []
    try:
        for position in range(8 + len(raw)):
            for byte in REPLACEMENTS:
                if base[position] == byte:
                    continue
                with open(scratch, "wb") as handle:
                    handle.write(base[:position] + bytes([byte]) + base[position + 1:])
                try:
                    case = {"position": position, "byte": byte, "accepted": True, **contents(scratch)}
                except Exception as error:
                    case = {"position": position, "byte": byte, "accepted": False,
                            "reference_error": f"{type(error).__name__}: {error}"[:160]}
                cases.append(case)
    finally:
        os.remove(scratch)
    with open(os.path.join(HERE, "corruptions.json"), "w") as handle:
        json.dump({"reference": "safetensors " + __import__("safetensors").__version__, "base": "corruption_base.case",
                   "cases": cases}, handle, indent=0, sort_keys=True)
        handle.write("\n")
    print(sum(c["accepted"] for c in cases), "of", len(cases), "single-byte corruptions accepted by the reference")


def string_cases():
    names = [bytes([b]) for b in range(256)] + [b"\\" + bytes([b]) for b in range(256)]
    names += [b"\\u00e9", b"\\u00E9", b"\\ud83d\\ude00", b"\\ud83d", b"\\ude00", b"\\ud83dx", b"\\u12", b"\\u12g4",
              b"\\u0000", b"\\u001f", b"\\/", b"\xc3\xa9", b"\xc2\x80", b"\xdf\xbf", b"\xe0\xa0\x80", b"\xef\xbf\xbf",
              b"\xf0\x90\x80\x80", b"\xf4\x8f\xbf\xbf", b"\xc0\x80", b"\xc1\xbf", b"\xe0\x80\x80", b"\xf0\x80\x80\x80",
              b"\xed\xa0\x80", b"\xed\xbf\xbf", b"\xf4\x90\x80\x80", b"\xf5\x80\x80\x80", b"\xe2\x82", b"\xf0\x9f\x98",
              b"\x80", b"\xbf", b"\xc3", b"\xc3(", b"\xe2(\xa1", b"\xef\xbb\xbf"]
    scratch = os.path.join(HERE, "string.tmp")
    cases = []
    try:
        for name in names:
            raw = b'{"' + name + b'":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'
            with open(scratch, "wb") as handle:
                handle.write(struct.pack("<Q", len(raw)) + raw + DATA)
            try:
                with safe_open(scratch, framework="numpy") as handle:
                    keys = list(handle.keys())
                    for key in keys:
                        handle.get_tensor(key)
                case = {"name": name.hex(), "accepted": True, "decoded": keys[0]}
            except Exception as error:
                case = {"name": name.hex(), "accepted": False, "reference_error": f"{type(error).__name__}: {error}"[:160]}
            cases.append(case)
    finally:
        os.remove(scratch)
    with open(os.path.join(HERE, "strings.json"), "w") as handle:
        json.dump({"reference": "safetensors " + __import__("safetensors").__version__, "cases": cases}, handle, indent=0,
                  sort_keys=True, ensure_ascii=True)
        handle.write("\n")
    print(sum(c["accepted"] for c in cases), "of", len(cases), "tensor names accepted by the reference")


def main():
    os.makedirs(HERE, exist_ok=True)
    manifest = {}
    for name, header in sorted(CASES.items()):
        raw = header.encode("utf-8", "surrogatepass")
        path = os.path.join(HERE, name + ".case")
        with open(path, "wb") as handle:
            handle.write(struct.pack("<Q", len(raw)) + raw + DATA)
        manifest[name] = verdict(path)
    with open(os.path.join(HERE, "manifest.json"), "w") as handle:
        json.dump({"reference": "safetensors " + __import__("safetensors").__version__, "cases": manifest}, handle, indent=1,
                  sort_keys=True)
        handle.write("\n")
    print(sum(not v["accepted"] for v in manifest.values()), "of", len(manifest), "cases rejected by the reference")
    corruptions()
    string_cases()


if __name__ == "__main__":
    main()
