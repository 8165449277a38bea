import sys

from imagingkit.cli import main

sys.exit(main())
