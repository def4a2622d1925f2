#!/usr/bin/env python3
"""Re-runs every fixture generator (Fixtures/**/make_*.py) and checks that the committed fixtures
come out the same, so they cannot rot.

"The same" means: the same tensor names, dtypes and shapes, equal metadata, and float values equal
to within 1e-6 absolute + 1e-5 relative (JAX's CPU kernels may differ in the last bit between
processors). The safetensors writer orders metadata keys at random, so bytes are not compared.
Exit status 1 names every difference.
"""
import glob
import os
import shutil
import subprocess
import sys
import tempfile

import ml_dtypes  # noqa: F401  (registers bfloat16 with numpy)
import numpy as np
from safetensors import safe_open

ROOT = os.path.dirname(os.path.abspath(__file__))


def load(path):
    with safe_open(path, "np") as handle:
        return handle.metadata() or {}, {name: handle.get_tensor(name) for name in handle.keys()}


def main():
    committed = sorted(glob.glob(os.path.join(ROOT, "**", "*.safetensors"), recursive=True))
    saved = tempfile.mkdtemp()
    for path in committed:
        shutil.copy(path, os.path.join(saved, os.path.relpath(path, ROOT).replace(os.sep, "__")))
    for generator in sorted(glob.glob(os.path.join(ROOT, "**", "make_*.py"), recursive=True)):
        print("running", os.path.relpath(generator, os.path.dirname(ROOT)), flush=True)
        subprocess.run([sys.executable, generator], check=True)
    problems = []
    regenerated = sorted(glob.glob(os.path.join(ROOT, "**", "*.safetensors"), recursive=True))
    if regenerated != committed:
        problems.append(f"the generators wrote a different set of files: {sorted(set(regenerated) ^ set(committed))}")
    for path in committed:
        name = os.path.relpath(path, ROOT)
        old_meta, old = load(os.path.join(saved, name.replace(os.sep, "__")))
        new_meta, new = load(path)
        if old_meta != new_meta:
            problems.append(f"{name}: metadata differs")
        if sorted(old) != sorted(new):
            problems.append(f"{name}: tensor names differ")
            continue
        for key in old:
            a, b = old[key], new[key]
            if a.dtype != b.dtype or a.shape != b.shape:
                problems.append(f"{name}: {key} is {b.dtype}{list(b.shape)}, committed {a.dtype}{list(a.shape)}")
            elif a.dtype.kind == "f" and not np.allclose(a, b, atol=1e-6, rtol=1e-5):
                problems.append(f"{name}: {key} differs by up to {float(np.max(np.abs(a - b)))}")
            elif a.dtype.kind != "f" and not np.array_equal(a, b):
                problems.append(f"{name}: {key} differs")
    shutil.rmtree(saved)
    for problem in problems:
        print("DIFFERS:", problem)
    print(f"{len(committed)} fixtures checked, {len(problems)} differences")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
