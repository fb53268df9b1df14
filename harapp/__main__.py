import sys

from harapp.cli import main

sys.exit(main())
