"""Client-side limits and the batch submitter under the simulator's real limits (not written yet).

Planned, against a simulator in its own process with ``SimulatorConfig.realistic`` limits
scaled down (requests and submits per minute, ``max_running``):

* 429s seen by the server per 1,000 jobs with the default :class:`Limits` versus
  ``Limits.off()`` (the server's limits only);
* submits per minute actually achieved against the configured ceiling;
* peak generations running (``/_sim/stats`` ``peak_running``) against ``max_running``;
* duplicate generations (``duplicate_submissions``) with submit answers lost on purpose
  (``reset_after_submit_rate``): must be 0.

This file is a skeleton: it measures nothing yet, and RESULTS.md has no numbers for it.
"""

from __future__ import annotations

import sys


def main() -> None:
    print("benchmarks/limits.py is not written yet; see its docstring for the plan.")
    sys.exit(2)


if __name__ == "__main__":
    main()
