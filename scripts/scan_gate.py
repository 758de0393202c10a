#!/usr/bin/env python3
"""The pipeline's image-scan gate: fail when ECR's scan of the new image found anything at or
above a severity threshold.

Reads the JSON of `aws ecr describe-image-scan-findings` (basic scanning's
`imageScanFindings.findingSeverityCounts`, or enhanced scanning's `enhancedFindings`) and
prints one line per severity counted. Exit 0: nothing at or above the threshold; 1: findings
at or above it (listed); 2: bad input (unknown threshold, not a scan result, scan not complete).

Usage: scripts/scan_gate.py --threshold HIGH scan.json     (or - for stdin)
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

# ECR's severities, most severe first; UNDEFINED and INFORMATIONAL never fail the gate.
SEVERITIES = ("CRITICAL", "HIGH", "MEDIUM", "LOW")
IGNORED = ("INFORMATIONAL", "UNDEFINED", "UNTRIAGED")


def severity_counts(scan: dict[str, object]) -> Counter[str]:
    findings = scan.get("imageScanFindings")
    status = scan.get("imageScanStatus")
    if isinstance(status, dict) and status.get("status") not in (None, "COMPLETE", "ACTIVE"):
        raise ValueError(f"the scan is {status.get('status')}: {status.get('description', '')}")
    if not isinstance(findings, dict):
        raise ValueError("no imageScanFindings: not the output of describe-image-scan-findings")
    counts: Counter[str] = Counter()
    for severity, number in dict(findings.get("findingSeverityCounts") or {}).items():
        counts[str(severity).upper()] += int(number)
    if not findings.get("findingSeverityCounts"):
        for finding in findings.get("enhancedFindings") or []:
            counts[str(finding.get("severity", "UNDEFINED")).upper()] += 1
    return counts


def gate(counts: Counter[str], threshold: str) -> list[str]:
    """The severities at or above `threshold` that have findings, as 'SEVERITY: N'."""
    blocking = SEVERITIES[: SEVERITIES.index(threshold) + 1]
    return [f"{s}: {counts[s]}" for s in blocking if counts.get(s)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threshold", required=True, type=str.upper)
    parser.add_argument("scan", help="describe-image-scan-findings JSON, or - for stdin")
    args = parser.parse_args(argv)
    if args.threshold not in SEVERITIES:
        print(
            f"scan gate: threshold {args.threshold!r} is not one of {', '.join(SEVERITIES)}",
            file=sys.stderr,
        )
        return 2
    try:
        text = sys.stdin.read() if args.scan == "-" else Path(args.scan).read_text("utf-8")
        counts = severity_counts(json.loads(text))
    except (OSError, ValueError) as exc:
        print(f"scan gate: {exc}", file=sys.stderr)
        return 2
    found = ", ".join(f"{s} {n}" for s, n in sorted(counts.items())) or "no findings"
    print(f"scan gate: {found} (threshold {args.threshold})")
    blocking = gate(counts, args.threshold)
    if blocking:
        print(
            f"scan gate: FAILED, findings at or above {args.threshold}: {'; '.join(blocking)}",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
