"""python3 -m qstash_dev: the same command line as tools/qstash-dev."""

import sys

from qstash_dev.emulator import main

sys.exit(main())
