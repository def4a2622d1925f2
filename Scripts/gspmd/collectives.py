"""Every collective in a compiled XLA program, with the mesh axis it runs over and the bytes each
device sends, counted the way glam's `CommunicationLedger` counts its own collectives.

For a group of n devices and a per-device buffer of b bytes (bandwidth-optimal algorithms):
    all-to-all          (n − 1)/n · b      (a device keeps its own chunk)
    all-reduce          2(n − 1)/n · b     (a ring: reduce-scatter, then all-gather)
    reduce-scatter      (n − 1)/n · b      (b: the input, before scattering)
    all-gather          (n − 1) · b        (b: the input shard)
    collective-permute  b                  (when the device has a target other than itself)

Replica groups are read in the three notations XLA prints: explicit `{{0,1},{2,3}}`, iota
`[G,n]<=[dims]T(perm)`, and mesh `mesh['axis_0'=4,'axis_1'=2] {'axis_0'}`. In an SPMD program their
ids are partition ids, the positions of the devices in the mesh's row-major order, so a group maps
to the mesh axes along which its members differ.
"""
import re

import numpy as np

COLLECTIVES = ("all-to-all", "all-reduce", "all-gather", "reduce-scatter", "collective-permute")
ELEMENT_BYTES = {"f32": 4, "s32": 4, "u32": 4, "f64": 8, "s64": 8, "u64": 8, "bf16": 2, "f16": 2, "s16": 2, "u16": 2,
                 "s8": 1, "u8": 1, "pred": 1}
_INSTRUCTION = re.compile(r"^\s*(?:ROOT\s+)?%?([\w.\-]+)\s*=\s*(.+?)\s+(" + "|".join(COLLECTIVES) + r")(-start)?\((.*)$")
_SHAPE = re.compile(r"\b(" + "|".join(ELEMENT_BYTES) + r")\[([\d,]*)\]")


def shape_bytes(text):
    """Bytes of an HLO shape or tuple of shapes (layouts ignored)."""
    total = 0
    for dtype, dims in _SHAPE.findall(text):
        count = int(np.prod([int(d) for d in dims.split(",") if d])) if dims else 1
        total += count * ELEMENT_BYTES[dtype]
    return total


def _explicit_groups(text):
    return [[int(x) for x in group.split(",") if x.strip()] for group in re.findall(r"\{([\d,\s]*)\}", text)]


def _iota_groups(text):
    m = re.match(r"\[([\d,]+)\]<=\[([\d,]+)\](?:T\(([\d,]+)\))?", text)
    shape = [int(x) for x in m.group(1).split(",")]
    dims = [int(x) for x in m.group(2).split(",")]
    ids = np.arange(int(np.prod(dims))).reshape(dims)
    if m.group(3):
        ids = ids.transpose([int(x) for x in m.group(3).split(",")])
    return ids.reshape(shape).tolist()


def _mesh_groups(text):
    m = re.match(r"mesh\[([^\]]*)\]\s*\{([^}]*)\}", text)
    axes = [(name, int(size)) for name, size in re.findall(r"'([^']+)'=(\d+)", m.group(1))]
    varying = re.findall(r"'([^']+)'", m.group(2))
    names = [name for name, _ in axes]
    ids = np.arange(int(np.prod([size for _, size in axes]))).reshape([size for _, size in axes])
    moved = ids.transpose([i for i, n in enumerate(names) if n not in varying] + [names.index(v) for v in varying])
    group_size = int(np.prod([dict(axes)[v] for v in varying])) if varying else 1
    return moved.reshape(-1, group_size).tolist()


def replica_groups(line, device_count):
    """The groups of partition ids of one collective instruction ([[all]] when none are given)."""
    m = re.search(r"replica_groups=(mesh\[[^\]]*\]\s*\{[^}]*\}|\[[\d,]+\]<=\[[\d,]+\](?:T\([\d,]+\))?|\{(?:\{[\d,\s]*\},?)*\})", line)
    if not m:
        return [list(range(device_count))]
    text = m.group(1)
    if text.startswith("mesh"):
        return _mesh_groups(text)
    if text.startswith("["):
        return _iota_groups(text)
    groups = _explicit_groups(text[1:-1])
    return groups or [list(range(device_count))]


def mesh_axes_of(groups, mesh_shape, axis_names):
    """The mesh axes along which the members of the groups differ, joined with '+', or 'none'."""
    coordinates = {p: np.unravel_index(p, mesh_shape) for p in range(int(np.prod(mesh_shape)))}
    varying = set()
    for group in groups:
        coords = np.array([coordinates[p] for p in group])
        varying |= {axis_names[i] for i in range(len(mesh_shape)) if len(set(coords[:, i])) > 1}
    return "+".join(a for a in axis_names if a in varying) or "none"


def per_device_bytes(op, result_bytes, n, line):
    """Bytes one device sends, by the ledger's formulas (see the module docstring)."""
    if n <= 1:
        return 0
    if op == "all-to-all":
        return (n - 1) * result_bytes // n
    if op == "all-reduce":
        return 2 * (n - 1) * result_bytes // n
    if op == "all-gather":
        return (n - 1) * (result_bytes // n)
    if op == "reduce-scatter":
        return (n - 1) * result_bytes
    if op == "collective-permute":
        pairs = re.findall(r"\{(\d+),(\d+)\}", line.split("source_target_pairs=")[1]) if "source_target_pairs=" in line else []
        return result_bytes if any(a != b for a, b in pairs) else 0
    raise ValueError(op)


def collectives(hlo_text, mesh_shape, axis_names=("data", "mdl")):
    """One dict per collective instruction of the program: op, shape, groups, axes, bytes_per_device, op_name."""
    out = []
    device_count = int(np.prod(mesh_shape))
    for line in hlo_text.splitlines():
        m = _INSTRUCTION.match(line)
        if not m:
            continue
        name, shape, op = m.group(1), m.group(2), m.group(3)
        if op == "collective-permute" and "source_target_pairs=" not in line:
            continue
        if m.group(4):  # an async start returns (operands, results, …): count the results only
            shape = _async_result(shape)
        if op == "collective-permute":  # its "groups" are the (source, target) pairs
            groups = [[int(a), int(b)] for a, b in re.findall(r"\{(\d+),(\d+)\}", line.split("source_target_pairs=")[1])]
        else:
            groups = replica_groups(line, device_count)
        n = len(groups[0])
        result_bytes = shape_bytes(shape)
        op_name = re.search(r'op_name="([^"]*)"', line)
        out.append({"name": name, "op": op, "shape": re.sub(r"\{[\d,]*\}", "", shape), "group_size": n,
                    "axes": mesh_axes_of(groups, mesh_shape, axis_names), "bytes_per_device": per_device_bytes(op, result_bytes, n, line),
                    "op_name": op_name.group(1) if op_name else ""})
    return out


def _async_result(shape):
    """The result part of an async collective's ((operands), (results), …) shape."""
    depth, parts, start = 0, [], 1
    for i, ch in enumerate(shape):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 1:
            parts.append(shape[start:i])
            start = i + 1
    parts.append(shape[start:-1])
    return parts[1] if len(parts) > 1 else shape


def elements(shape):
    """The (dtype, dims) of each element of an HLO shape or tuple of shapes."""
    return [(dtype, [int(d) for d in dims.split(",") if d]) for dtype, dims in _SHAPE.findall(shape)]


def element_bytes(dtype, dims):
    return int(np.prod(dims)) * ELEMENT_BYTES[dtype] if dims else ELEMENT_BYTES[dtype]
