import sys

from llbench.cli import main

sys.exit(main())
