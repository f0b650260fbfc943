"""Print one closing line, 'total: N passed, N failed, N skipped', over several pytest JUnit XML files."""

import sys
import xml.etree.ElementTree as ET


def main(paths: list[str]) -> int:
    """Sum the test counts of the given JUnit files and print them."""
    tests = failures = errors = skipped = 0
    for path in paths:
        for suite in ET.parse(path).getroot().iter("testsuite"):
            tests += int(suite.get("tests", 0))
            failures += int(suite.get("failures", 0))
            errors += int(suite.get("errors", 0))
            skipped += int(suite.get("skipped", 0))
    failed = failures + errors
    print(f"total: {tests - failed - skipped} passed, {failed} failed, {skipped} skipped")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
