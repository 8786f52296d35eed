import sys

from edge.vlm.remote.cli import main

sys.exit(main())
