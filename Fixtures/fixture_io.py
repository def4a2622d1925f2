"""Writes golden fixtures for the generators under Fixtures/: the fixture kit's writer
(Fixtures/kit/glam_fixtures.py), which checks each tensor name against its kind's schema."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "kit"))
import glam_fixtures  # noqa: E402


def write_fixture(path, kind, config, source, tensors, tolerance=None):
    """Fills the envelope and writes the fixture (see glam_fixtures.write)."""
    glam_fixtures.write(path, kind, config, source, tensors, tolerance=tolerance)
