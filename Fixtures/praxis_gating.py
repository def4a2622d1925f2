"""Imports praxis' own `gshard_utils.top2_gating_on_logits` without praxis' heavy dependencies.

`praxis.gshard_utils` needs only absl, jax, numpy and `praxis.pytypes`; the last pulls in
flax/fiddle/etc., so a stub module with the one name gshard_utils reads (`SplitDimsMapping`) is
installed first (praxis imports them at module level, the gating does not use them). Requires: pip install --no-deps praxis==1.4.0.
"""
import importlib.util
import os
import sys
import types


def load_top2_gating():
    spec = importlib.util.find_spec("praxis")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("praxis is not installed: pip install --no-deps praxis==1.4.0")
    package_dir = list(spec.submodule_search_locations)[0]
    if "praxis" not in sys.modules:
        package = types.ModuleType("praxis")
        package.__path__ = [package_dir]
        sys.modules["praxis"] = package
    stub = types.ModuleType("praxis.pytypes")
    stub.SplitDimsMapping = object
    sys.modules["praxis.pytypes"] = stub
    module_spec = importlib.util.spec_from_file_location("praxis.gshard_utils", os.path.join(package_dir, "gshard_utils.py"))
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.top2_gating_on_logits
