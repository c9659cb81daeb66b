import sys

from parity.commands import main

sys.exit(main())
