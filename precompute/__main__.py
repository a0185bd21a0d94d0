import sys

from precompute.cli.main import main

sys.exit(main())
