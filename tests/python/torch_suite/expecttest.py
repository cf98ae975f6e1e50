"""Stand-in for PyPI's expecttest, which torch's test utilities import and
Debian does not package: its TestCase base class. The distributed suite
never calls assertExpectedInline; a test that did would compare plainly."""
import unittest


class TestCase(unittest.TestCase):
    def assertExpectedInline(self, actual, expect, skip=0):  # noqa: N802 - expecttest's name
        self.assertEqual(actual, expect)

ACCEPT = False  # common_utils sets it from its --accept flag
