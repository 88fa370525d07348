"""The ``adcat`` command installed with the package: the same CLI as the binary."""

from __future__ import annotations

import signal
import sys


def main() -> None:
    from . import _adcat

    # The engine installs its own SIGINT/SIGTERM handlers (which remove a partial
    # output); Python's would only queue a KeyboardInterrupt for after the run.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)
    sys.exit(_adcat.main(["adcat", *sys.argv[1:]]))


if __name__ == "__main__":
    main()
