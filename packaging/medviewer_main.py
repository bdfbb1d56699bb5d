"""The bundle's entry point: the same `medviewer` command line as the pip install."""

import multiprocessing
import sys

if __name__ == "__main__":
    # Training's data-loader workers start child processes of this executable (spawn).
    multiprocessing.freeze_support()
    from medviewer.cli import main

    sys.exit(main())
