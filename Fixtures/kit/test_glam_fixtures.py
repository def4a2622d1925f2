#!/usr/bin/env python3
"""Tests of the fixture kit (glam_fixtures.py): reading, comparing, reporting and writing, and its
verdicts against `glam verify`'s on the same files.

    python3 Fixtures/kit/test_glam_fixtures.py [--glam PATH]     (without a glam binary the cross-checks are skipped)
"""
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import glam_fixtures as gf  # noqa: E402

GLAM = os.environ.get("GLAM", os.path.join(ROOT, ".build", "release", "glam"))
# Every committed glam fixture: all .safetensors under Fixtures/ except the two files that are not
# fixtures (the safetensors reader's reference file and the Adafactor trajectory that a Swift test
# replays).
COMMITTED = sorted(p for p in glob.glob(os.path.join(ROOT, "Fixtures", "**", "*.safetensors"), recursive=True)
                   if not p.endswith("reference.safetensors") and not p.endswith(os.path.join("trajectory", "sparse_experts.safetensors")))
SPEC = os.path.join(ROOT, "Fixtures", "moe", "top2_gating_spec_cf1.safetensors")


class KitTests(unittest.TestCase):
    def setUp(self):
        self.directory = tempfile.mkdtemp()

    def tearDown(self):
        shutil.rmtree(self.directory)

    def path(self, name):
        return os.path.join(self.directory, name)

    def test_every_committed_fixture_reads_and_matches_itself(self):
        self.assertGreaterEqual(len(COMMITTED), 25)
        kinds = set()
        for path in COMMITTED:
            fixture = gf.read(path)
            kinds.add(fixture.kind)
            report = gf.compare(fixture, fixture.expected)
            self.assertTrue(report.ok, path)
            self.assertEqual(report.passed, len(fixture.expected))
        self.assertEqual(kinds, set(gf.SCHEMAS))

    def test_a_perturbed_element_fails_at_its_index(self):
        fixture = gf.read(SPEC)
        combine = fixture.expected["combine"].copy()
        combine[0, 4, 3, 1] += 0.01
        report = gf.compare(fixture, {**fixture.expected, "combine": combine})
        self.assertFalse(report.ok)
        self.assertEqual(report.failed, 1)
        bad = [c for c in report.comparisons if not c.passed][0]
        self.assertEqual(bad.name, "combine")
        self.assertIn("first mismatch at [0, 4, 3, 1]", bad.detail)
        # ... and gives the two values found there, computed first.
        computed, expected = combine[0, 4, 3, 1], fixture.expected["combine"][0, 4, 3, 1]
        self.assertIn(f"{np.float32(computed)} computed, {np.float32(expected)} expected", bad.detail)
        self.assertAlmostEqual(bad.max_abs, 0.01, places=6)
        self.assertTrue(str(report).endswith("3 passed, 1 failed"))

    def test_tolerance_is_atol_plus_rtol_times_expected(self):
        comparison = gf.compare_tensor("t", np.array([1.09, 2.0]), np.array([1.0, 2.0]), 0.05, 0.05)
        self.assertTrue(comparison.passed)  # 0.09 ≤ 0.05 + 0.05·1
        comparison = gf.compare_tensor("t", np.array([1.11, 2.0]), np.array([1.0, 2.0]), 0.05, 0.05)
        self.assertFalse(comparison.passed)
        # The reported worst difference is the largest |actual − expected|, and 0 when there is nothing to compare.
        self.assertEqual(gf.compare_tensor("t", np.array([1.25, 2.0, 2.5]), np.array([1.0, 2.0, 3.0]), 1, 0).max_abs, 0.5)
        empty = gf.compare_tensor("t", np.zeros((0, 3)), np.zeros((0, 3)), 0.05, 0.05)
        self.assertTrue(empty.passed)
        self.assertEqual(empty.max_abs, 0.0)

    def test_shape_mismatch_nan_and_missing_tensors_fail(self):
        fixture = gf.read(SPEC)
        self.assertIn("shape", gf.compare_tensor("c", np.zeros((2, 2)), np.zeros((2, 3)), 1, 1).detail)
        self.assertFalse(gf.compare_tensor("c", np.array([np.nan]), np.array([0.0]), 1, 1).passed)
        self.assertFalse(gf.compare_tensor("c", np.array([np.inf]), np.array([np.inf]), 1, 1).passed)
        report = gf.compare(fixture, {"combine": fixture.expected["combine"]})
        self.assertEqual(report.failed, 3)
        self.assertTrue(any(c.detail == "not computed" for c in report.comparisons))
        skipped = gf.compare(fixture, {"combine": fixture.expected["combine"]}, skip={"dispatch", "aux_loss", "over_capacity"})
        self.assertTrue(skipped.ok)
        self.assertEqual(skipped.passed, 1)

    def test_write_then_read_round_trips_and_keeps_types(self):
        config = {"num_experts": 2, "expert_capacity": None, "capacity_factor": 2.0, "second_expert_policy": "all",
                  "legacy_mtf_behavior": True, "gating_logit_cap": 0.0}
        logits = np.arange(8, dtype=np.float64).reshape(1, 4, 2)
        gf.write(self.path("a.safetensors"), "top2_gating", config, "test", {"input.logits": logits,
                 "expected.aux_loss": np.float32(1.5)}, tolerance={"expected.aux_loss": [0.5, 0.0]})
        fixture = gf.read(self.path("a.safetensors"))
        self.assertEqual(fixture.config, config)
        self.assertEqual(fixture.inputs["logits"].dtype, np.float32)
        self.assertEqual(fixture.expected["aux_loss"].shape, ())
        self.assertEqual(fixture.tolerance_for("aux_loss"), (0.5, 0.0))
        self.assertEqual(fixture.tolerance_for("combine"), (1e-5, 0.0))
        self.assertTrue(gf.compare(fixture, {"aux_loss": 1.9}).ok)
        lm = gf.read(os.path.join(ROOT, "Fixtures", "model", "glam_lm_dense.safetensors"))
        self.assertEqual(lm.inputs["tokens"].dtype, np.int32)
        self.assertEqual(lm.tolerance_for("grad.embedding"), (1e-4, 1e-3))

    def test_malformed_fixtures_are_refused_with_the_reason(self):
        config = {"num_experts": 2}
        with self.assertRaisesRegex(gf.FixtureError, "must give"):
            gf.write(self.path("b.safetensors"), "top2_gating", config, "", {})
        full = dict(gf.read(SPEC).config)
        with self.assertRaisesRegex(gf.FixtureError, "expected.combined is not a tensor"):
            gf.write(self.path("b.safetensors"), "top2_gating", full, "", {"expected.combined": np.zeros(2)})
        from safetensors.numpy import save_file
        save_file({"expected.combined": np.zeros(2, np.float32)}, self.path("c.safetensors"),
                  metadata={"format": "glam-fixture", "version": "1", "kind": "top2_gating", "config": '{"num_experts": 2, '
                            '"expert_capacity": null, "capacity_factor": 1, "second_expert_policy": "all", '
                            '"legacy_mtf_behavior": true, "gating_logit_cap": 0}', "source": ""})
        with self.assertRaisesRegex(gf.FixtureError, "expected.combined is not a tensor of kind top2_gating"):
            gf.read(self.path("c.safetensors"))
        with self.assertRaisesRegex(gf.FixtureError, "not a glam fixture"):
            gf.read(os.path.join(ROOT, "Fixtures", "safetensors", "reference.safetensors"))
        with open(self.path("d.safetensors"), "wb") as f:
            f.write(b"\x01\x00")
        with self.assertRaisesRegex(gf.FixtureError, "not a readable safetensors file"):
            gf.read(self.path("d.safetensors"))

    def test_each_header_problem_is_refused_by_name_and_by_glam_verify(self):
        """An unknown kind or version, a config or tolerance that is not JSON or not a JSON object, a
        fixture without expected tensors: the kit names the problem, and glam verify refuses the same
        file (status 2)."""
        from safetensors.numpy import save_file
        good = gf.read(SPEC)
        metadata = {"format": "glam-fixture", "version": "1", "kind": "top2_gating", "config": json.dumps(good.config), "source": ""}
        tensors = {f"input.{k}": v for k, v in good.inputs.items()}
        tensors.update({f"expected.{k}": v for k, v in good.expected.items()})
        cases = [
            ("kind", dict(metadata, kind="top3_gating"), tensors, "unknown kind 'top3_gating'"),
            ("version", dict(metadata, version="2"), tensors, "fixture version '2', this kit reads 1"),
            ("no-version", {k: v for k, v in metadata.items() if k != "version"}, tensors, "fixture version None, this kit reads 1"),
            ("config", dict(metadata, config="{num_experts: 2"), tensors, "config or tolerance is not JSON"),
            ("tolerance", dict(metadata, tolerance="[1e-5"), tensors, "config or tolerance is not JSON"),
            # JSON, but not objects: each alone is refused.
            ("config-array", dict(metadata, config="[2]"), tensors, "config and tolerance must be JSON objects"),
            ("config-number", dict(metadata, config="2"), tensors, "config and tolerance must be JSON objects"),
            ("tolerance-array", dict(metadata, tolerance="[1e-5, 0]"), tensors, "config and tolerance must be JSON objects"),
            ("tolerance-null", dict(metadata, tolerance="null"), tensors, "config and tolerance must be JSON objects"),
            ("expected", metadata, {k: v for k, v in tensors.items() if not k.startswith("expected.")}, "no expected tensor"),
        ]
        for name, meta, contents, message in cases:
            path = self.path(f"bad-{name}.safetensors")
            save_file({k: np.ascontiguousarray(v) for k, v in contents.items()}, path, metadata=meta)
            with self.assertRaisesRegex(gf.FixtureError, message, msg=name):
                gf.read(path)
            if os.path.exists(GLAM):
                result = subprocess.run([GLAM, "verify", path], capture_output=True, text=True)
                self.assertEqual(result.returncode, 2, f"{name}: glam verify {result.returncode}: {result.stdout}{result.stderr}")

    def test_describe_lists_every_key_tensor_and_default_tolerance(self):
        for kind, schema in gf.SCHEMAS.items():
            text = gf.describe(kind).splitlines()
            self.assertEqual(text[0], f"kind {kind}")
            self.assertEqual(text[1], "  config keys: " + ", ".join(schema.config_keys))
            for title, table in (("input", schema.inputs), ("param", schema.params), ("expected", schema.expected)):
                for name, (shape, meaning) in table.items():
                    line = [l for l in text if l.split() and l.split()[0] == f"{title}.{name}"]
                    self.assertEqual(len(line), 1, f"{kind}: {title}.{name}")
                    self.assertIn(shape, line[0])
                    self.assertIn(meaning, line[0])
                    tol = schema.tolerances.get(name) if title == "expected" else None
                    if tol is not None:
                        self.assertIn(f"(atol {tol[0]}, rtol {tol[1]})", line[0], f"{kind}: {name}")
                    else:
                        self.assertNotIn("(atol ", line[0], f"{kind}: {name}")
            # What the gradients are of, and the notes, each on a line of its own when the kind has them.
            self.assertEqual(("  gradients are of: " + schema.gradients_of) in text, bool(schema.gradients_of), kind)
            if schema.notes:
                self.assertIn("  " + schema.notes, text, kind)
        result = subprocess.run([sys.executable, os.path.join(HERE, "glam_fixtures.py"), "describe", "top2_gating"],
                                capture_output=True, text=True, check=True)
        self.assertEqual(result.stdout.strip(), gf.describe("top2_gating"))
        usage = subprocess.run([sys.executable, os.path.join(HERE, "glam_fixtures.py")], capture_output=True, text=True)
        self.assertTrue(usage.stdout.startswith("usage: "))
        # `describe` alone describes every kind, in the schemas' order.
        every = subprocess.run([sys.executable, os.path.join(HERE, "glam_fixtures.py"), "describe"],
                               capture_output=True, text=True, check=True)
        self.assertEqual(every.stdout.strip(), "\n\n".join(gf.describe(k) for k in gf.SCHEMAS))

    @unittest.skipUnless(os.path.exists(GLAM), "no glam binary")
    def test_verdicts_and_first_mismatch_agree_with_glam_verify(self):
        fixture = gf.read(SPEC)
        tensors = {"input." + k: v for k, v in fixture.inputs.items()}
        combine = fixture.expected["combine"].copy()
        combine[0, 6, 3, 1] -= 0.2
        tensors.update({"expected.combine": combine, "expected.aux_loss": fixture.expected["aux_loss"]})
        gf.write(self.path("e.safetensors"), "top2_gating", fixture.config, fixture.source, tensors)
        result = subprocess.run([GLAM, "verify", self.path("e.safetensors")], capture_output=True, text=True)
        self.assertEqual(result.returncode, 1)
        glam_lines = [line for line in result.stdout.splitlines() if line.startswith("FAIL")]
        self.assertEqual(len(glam_lines), 1)
        self.assertIn("expected.combine", glam_lines[0])
        self.assertIn("first mismatch at [0, 6, 3, 1]", glam_lines[0])
        report = gf.compare(gf.read(self.path("e.safetensors")), {**fixture.expected})
        self.assertEqual((report.passed, report.failed), (1, 1))
        self.assertIn("first mismatch at [0, 6, 3, 1]", [c for c in report.comparisons if not c.passed][0].detail)

    @unittest.skipUnless(os.path.exists(GLAM), "no glam binary")
    def test_pass_fail_rule_agrees_with_glam_verify_on_boundary_cases(self):
        """|a − e| ≤ atol + rtol·|e| at and just past equality, for positive and negative errors, NaN
        and infinite expectations: the kit and glam verify give the same verdict on each, and where
        the numbers are exact binary fractions the verdict is the rule's in exact arithmetic."""
        from fractions import Fraction
        fixture = gf.read(SPEC)
        dispatch = fixture.expected["dispatch"]
        index = tuple(np.argwhere(dispatch == 1)[0])  # glam computes this element as exactly 1
        cases = [(0.25, 0.25, 0.0), (0.25, 0.2499, 0.0), (-0.25, 0.25, 0.0), (-0.25, 0.0, 1 / 3), (0.25, 0.0, 0.2),
                 (0.25, 0.0, 0.19), (0.5, 0.25, 0.125), (0.5, 0.25, 0.12), (0.0, 0.0, 0.0), (2.0 ** -20, 0.0, 0.0),
                 (2.0 ** -20, 2.0 ** -20, 0.0), (float("nan"), 1e30, 1e30), (float("inf"), 1e30, 1e30), (-2.0, 1.0, 0.0)]
        for offset, atol, rtol in cases:
            expected = dispatch.copy()
            expected[index] = np.float32(1 + offset)
            tensors = {"input." + k: v for k, v in fixture.inputs.items()}
            tensors["expected.dispatch"] = expected
            path = self.path("boundary.safetensors")
            gf.write(path, "top2_gating", fixture.config, fixture.source, tensors, tolerance={"expected.dispatch": [atol, rtol]})
            glam = subprocess.run([GLAM, "verify", path], capture_output=True, text=True).returncode
            self.assertIn(glam, (0, 1), f"glam verify on {offset, atol, rtol}")
            kit = gf.compare(gf.read(path), {"dispatch": dispatch})
            self.assertEqual(kit.failed == 0, glam == 0, f"kit and glam verify disagree on offset {offset}, atol {atol}, rtol {rtol}")
            e = float(np.float32(1 + offset))
            if np.isfinite(e):
                bound = Fraction(atol) + Fraction(rtol) * abs(Fraction(e))
                exact = abs(Fraction(1) - Fraction(e)) <= bound
                # Where atol + rtol·|e| rounds in double (rtol 0.2, 1/3) the rule is the double one;
                # where double arithmetic is exact the verdict must be the exact one.
                if Fraction(atol + rtol * abs(e)) == bound:
                    self.assertEqual(glam == 0, exact, f"offset {offset}, atol {atol}, rtol {rtol}")
            else:
                self.assertNotEqual(glam, 0, f"a non-finite expectation {e} must fail")

    @unittest.skipUnless(os.path.exists(GLAM), "no glam binary")
    def test_glam_fixture_files_read_with_the_kit(self):
        out = self.path("f.safetensors")
        subprocess.run([GLAM, "fixture", "--kind", "moe_layer", "--experts", "4", "--out", out], check=True, capture_output=True)
        fixture = gf.read(out)
        self.assertEqual(fixture.kind, "moe_layer")
        self.assertEqual(set(fixture.expected), {"y", "aux_loss", "grad.x", "grad.gate", "grad.wi", "grad.wo"})
        self.assertIn("not an independent reference", fixture.source)
        self.assertNotIn(out, fixture.source)

    def test_name_patterns_match_one_or_more_characters_between_prefix_and_suffix(self):
        """`<name>` stands for a non-empty middle: the rule restated as a regular expression must
        agree with the kit's matcher on every pattern of every kind and names built around it."""
        import random
        import re
        rng = random.Random(26)
        patterns = {p for schema in gf.SCHEMAS.values() for table in (schema.inputs, schema.params, schema.expected, schema.tolerances)
                    for p in table}
        self.assertTrue(any("<name>" in p and not p.endswith("<name>") for p in patterns), "a pattern with a suffix")
        for pattern in sorted(patterns):
            if "<name>" in pattern:
                prefix, suffix = pattern.split("<name>")
                regex = re.compile(re.escape(prefix) + ".+" + re.escape(suffix))
                middles = ["", "x", "layers.0.moe.wi", ".", "a.b"] + ["".join(rng.choice("ab.") for _ in range(rng.randint(0, 4))) for _ in range(20)]
                names = [prefix + m + suffix for m in middles] + [prefix + suffix[:-1], prefix[:-1] + "x" + suffix, prefix, suffix]
            else:
                regex = re.compile(re.escape(pattern))
                names = [pattern, pattern + "x", pattern[:-1], "x" + pattern]
            for name in names:
                self.assertEqual(gf._pattern_match(pattern, name), regex.fullmatch(name) is not None, f"{pattern!r} vs {name!r}")

    def test_tolerance_of_an_unknown_expected_tensor_is_an_error(self):
        fixture = gf.read(SPEC)
        self.assertEqual(fixture.tolerance_for("combine"), gf.SCHEMAS["top2_gating"].tolerances["combine"])
        for name in ["combined", "", "grad.x", "aux_loss.x"]:
            with self.assertRaisesRegex(gf.FixtureError, f"{name} is not an expected tensor of kind top2_gating"):
                fixture.tolerance_for(name)

    def test_malformed_tolerances_are_refused_by_the_kit_and_by_glam(self):
        fixture = gf.read(SPEC)
        tensors = {"input." + k: v for k, v in fixture.inputs.items()}
        tensors.update({"expected." + k: v for k, v in fixture.expected.items()})
        from safetensors.numpy import save_file
        for value in [[1e-5], [1e-5, 0, 0], [-1e-5, 0], [0, -1], ["1e-5", 0], None, {"atol": 1}, [True, 0], [0, False], [float("nan"), 0], [float("inf"), 0], [0, 0]]:
            path = self.path("tolerance.safetensors")
            metadata = {"format": "glam-fixture", "version": "1", "kind": "top2_gating", "config": json.dumps(fixture.config),
                        "source": "", "tolerance": json.dumps({"expected.combine": value})}
            save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, path, metadata=metadata)
            valid = value == [0, 0] and [type(v) for v in value] == [int, int]
            if valid:
                self.assertEqual(gf.read(path).tolerance_for("combine"), (0, 0))
            else:
                with self.assertRaisesRegex(gf.FixtureError, "not \\[atol, rtol\\]", msg=f"{value}"):
                    gf.read(path)
            if os.path.exists(GLAM):
                status = subprocess.run([GLAM, "verify", path], capture_output=True, text=True).returncode
                self.assertEqual(status != 2, valid, f"glam verify on tolerance {value}: exit {status}")

    @unittest.skipUnless(os.path.exists(GLAM), "no glam binary")
    def test_required_config_keys_and_default_tolerances_agree_with_glam_verify(self):
        """The kit and glam are two implementations of one contract: on every committed fixture,
        removing any config key is refused by both or by neither, and each expected tensor is
        compared with the same default tolerance (glam prints the one it used)."""
        import re
        from safetensors import safe_open
        from safetensors.numpy import save_file
        for committed in COMMITTED:
            with safe_open(committed, "np") as handle:
                metadata = dict(handle.metadata())
                tensors = {name: handle.get_tensor(name) for name in handle.keys()}
            config = json.loads(metadata["config"])
            for key in sorted(config):
                reduced = dict(config)
                del reduced[key]
                path = self.path("reduced.safetensors")
                save_file(tensors, path, metadata={**metadata, "config": json.dumps(reduced)})
                try:
                    gf.read(path)
                    kit_refuses = False
                except gf.FixtureError:
                    kit_refuses = True
                status = subprocess.run([GLAM, "verify", path], capture_output=True, text=True).returncode
                self.assertEqual(kit_refuses, status == 2, f"{os.path.basename(committed)} without {key!r}: kit refuses {kit_refuses}, glam exit {status}")
            if "tolerance" in metadata:
                continue
            fixture = gf.read(committed)
            result = subprocess.run([GLAM, "verify", committed], capture_output=True, text=True)
            used = {m.group(1): (float(m.group(2)), float(m.group(3)))
                    for m in re.finditer(r"(expected\.\S+)\s+max\|Δ\| \S+\s+\(atol (\S+), rtol (\S+)\)", result.stdout)}
            self.assertEqual(set(used), {"expected." + name for name in fixture.expected}, os.path.basename(committed))
            for name in fixture.expected:
                self.assertEqual(tuple(map(float, fixture.tolerance_for(name))), used["expected." + name], f"{os.path.basename(committed)} {name}")


if __name__ == "__main__":
    unittest.main(verbosity=1)
