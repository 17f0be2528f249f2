import sys

from annulus.cli import main

sys.exit(main())
