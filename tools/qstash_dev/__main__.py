"""python3 -m qstash_dev: the same command line as tools/qstash-dev."""

import sys

from .cli import main

sys.exit(main())
