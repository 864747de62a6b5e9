#!/usr/bin/python3
"""Prints "PASSED FAILED" for a JUnit XML report (pytest's --junitxml): the tally scripts/test.sh
adds up, read from the report rather than from the runner's last line. FAILED counts failures and
errors; skipped tests are neither. A missing or unreadable report prints "0 1"."""
import sys
import xml.etree.ElementTree as ET


def counts(path):
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return 0, 1
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    if not suites:
        return 0, 1
    passed = failed = 0
    for s in suites:
        tests, failures, errors, skipped = (int(s.get(k, 0)) for k in ("tests", "failures", "errors", "skipped"))
        failed += failures + errors
        passed += tests - failures - errors - skipped
    return passed, failed


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: junit_counts.py REPORT.xml")
    print("%d %d" % counts(sys.argv[1]))
