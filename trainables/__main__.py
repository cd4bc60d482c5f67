"""``python -m trainables {autoencoder,classifier,gan} [flags]``: one run without Ray."""

import sys

from trainables import KINDS
from trainables.cli import main

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in KINDS:
        print(f"usage: python -m trainables {{{','.join(KINDS)}}} [--help]", file=sys.stderr)
        sys.exit(2)
    main(sys.argv[1], sys.argv[2:])
