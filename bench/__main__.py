import sys

from clusterbench.cli import main

sys.exit(main())
