#!/usr/bin/env python3
"""Tests of collectives.py on hand-written HLO lines in each replica-group notation (no JAX needed).

    python3 Scripts/gspmd/test_collectives.py      (exit 1 on a failure)
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import collectives  # noqa: E402

HLO = """
  %all-to-all.1 = (f32[1,2,16,256]{3,2,1,0}, f32[1,2,16,256]{3,2,1,0}) all-to-all(%a, %b), channel_id=2, replica_groups=mesh['axis_0'=4,'axis_1'=2] {'axis_0'}, metadata={op_name="jit(f)/sharding_constraint"}
  %all-reduce = f32[2,8,16,256]{3,2,1,0} all-reduce(%c), channel_id=3, replica_groups=[4,2]<=[8], use_global_device_ids=true, to_apply=%add
  %all-reduce.2 = (f32[], f32[2,256]{1,0}) all-reduce(%d, %e), channel_id=4, replica_groups={{0,2,4,6},{1,3,5,7}}, to_apply=%add
  %all-gather = f32[8,64]{1,0} all-gather(%f), channel_id=5, replica_groups=[2,4]<=[4,2]T(1,0), dimensions={0}
  %reduce-scatter = f32[4,64]{1,0} reduce-scatter(%g), channel_id=6, replica_groups={{0,1,2,3,4,5,6,7}}, dimensions={0}, to_apply=%add
  %collective-permute = f32[16]{0} collective-permute(%h), channel_id=7, source_target_pairs={{0,1},{1,0}}
  %all-reduce-start = (f32[4]{0}, f32[4]{0}) all-reduce-start(%i), channel_id=8, replica_groups=mesh['axis_0'=1,'axis_1'=4,'axis_2'=2] {'axis_2'}, to_apply=%add
  %all-reduce-done = f32[4]{0} all-reduce-done(%all-reduce-start)
  %fusion = f32[8]{0} fusion(%all-reduce), kind=kLoop
"""


def main():
    failures = []

    def expect(label, got, want):
        if got != want:
            failures.append(f"{label}: got {got!r}, want {want!r}")

    found = collectives.collectives(HLO, (4, 2))
    expect("ops", [c["op"] for c in found],
           ["all-to-all", "all-reduce", "all-reduce", "all-gather", "reduce-scatter", "collective-permute", "all-reduce"])
    expect("axes", [c["axes"] for c in found], ["data", "mdl", "data", "data", "data+mdl", "mdl", "mdl"])
    expect("group sizes", [c["group_size"] for c in found], [4, 2, 4, 4, 8, 2, 2])
    # all-to-all over 4: 3/4 of 2·32 KiB; all-reduce over 2: 2·1/2 of 256 KiB; over 4: 2·3/4 of 2,052 B;
    # all-gather over 4: 3 × a quarter of 2 KiB; reduce-scatter over 8: 7 × its 1 KiB output;
    # collective-permute: its 64 B; async all-reduce over 2: the result (16 B), not operand + result.
    expect("bytes", [c["bytes_per_device"] for c in found], [49152, 262144, 3078, 1536, 7168, 64, 16])
    expect("op name", found[0]["op_name"], "jit(f)/sharding_constraint")
    expect("iota", collectives._iota_groups("[2,4]<=[4,2]T(1,0)"), [[0, 2, 4, 6], [1, 3, 5, 7]])
    expect("mesh", collectives._mesh_groups("mesh['axis_0'=2,'axis_1'=2,'axis_2'=2] {'axis_0','axis_2'}"),
           [[0, 1, 4, 5], [2, 3, 6, 7]])
    expect("elements", collectives.elements("(f32[], bf16[2,3]{1,0})"), [("f32", []), ("bf16", [2, 3])])
    for failure in failures:
        print("FAIL " + failure)
    print(f"{9 - len(failures)} passed, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
