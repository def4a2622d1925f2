"""Writes golden fixtures in the format of the "Golden fixtures" article (safetensors + metadata)."""
import json

import numpy as np
from safetensors.numpy import save_file


def write_fixture(path, kind, config, source, tensors, tolerance=None):
    metadata = {
        "format": "glam-fixture",
        "version": "1",
        "kind": kind,
        "config": json.dumps(config, sort_keys=True),
        "source": source,
    }
    if tolerance:
        metadata["tolerance"] = json.dumps(tolerance, sort_keys=True)
    arrays = {}
    for name, value in tensors.items():
        value = np.asarray(value)
        if value.dtype.kind in "iu":
            arrays[name] = np.array(value, dtype=np.int32, order="C")  # keeps rank 0 (ascontiguousarray would not)
        else:
            arrays[name] = np.array(value, dtype=np.float32, order="C")
    save_file(arrays, path, metadata=metadata)
