"""`python -m keras_prune ...` runs the `keras-prune` command."""

import sys

from keras_prune_cli import main

sys.exit(main())
