"""Where the tests find the repository and their data, wherever a test file sits under tests/."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TEST_DATA = ROOT / "tests" / "data"
