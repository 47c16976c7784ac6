"""The ``edgeaudit`` command's entry point: process-wide settings first, then the CLI.

The cyclic collector's first generation runs every 700 new container objects by default. A sweep
makes hundreds of thousands of short-lived ones (futures, handles, observations, report dicts), and
the imports before it tens of thousands: about 250 collections in a `discover` of a /24, 90 ms of
its CPU. At 20,000 there are about 40, 20 ms. Young garbage waits a little longer (a few MB at most);
what a full collection walks is unchanged (scanner.orchestrator freezes what is loaded before the
sweep). Only the command does this: a program that imports scanner as a library keeps its own settings.
"""

from __future__ import annotations

import gc

GC_FIRST_GENERATION = 20_000


def main() -> int:
    """Run the ``edgeaudit`` command."""
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_FIRST_GENERATION, older, oldest)
    from scanner.cli import main as cli_main

    return cli_main()


if __name__ == "__main__":
    raise SystemExit(main())
