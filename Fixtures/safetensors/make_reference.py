#!/usr/bin/env python3
"""Writes reference.safetensors with Hugging Face's own `safetensors` package (an independent
writer), so the Swift reader is tested on a file it did not produce.

Every tensor is arange(n) reshaped, times a dtype-specific factor, so the expected values are
written down independently in Tests/GLaMTests/SafeTensorsTests.swift:
  f32  [2, 3]   arange(6) * 0.5          F32
  f64  [3]      arange(3) * 0.25 + 1     F64
  i32  [2, 2]   arange(4) - 2            I32
  i64  [4]      arange(4) * 1000000007   I64
  bf16 [2]      [1.5, -2.0]              BF16 (exactly representable)
  scalar []     3.25                     F32 (rank 0)
  empty [0, 4]  (no elements)            F32
metadata: {"format": "reference", "note": "written by safetensors.numpy"}

Run: pip install safetensors numpy ml_dtypes; python3 Fixtures/safetensors/make_reference.py
"""
import os

import ml_dtypes
import numpy as np
from safetensors.numpy import save_file

tensors = {
    "f32": (np.arange(6, dtype=np.float32) * 0.5).reshape(2, 3),
    "f64": np.arange(3, dtype=np.float64) * 0.25 + 1,
    "i32": (np.arange(4, dtype=np.int32) - 2).reshape(2, 2),
    "i64": np.arange(4, dtype=np.int64) * 1000000007,
    "bf16": np.array([1.5, -2.0], dtype=ml_dtypes.bfloat16),
    "scalar": np.array(3.25, dtype=np.float32),
    "empty": np.zeros((0, 4), dtype=np.float32),
}
here = os.path.dirname(os.path.abspath(__file__))
save_file(tensors, os.path.join(here, "reference.safetensors"),
          metadata={"format": "reference", "note": "written by safetensors.numpy"})
