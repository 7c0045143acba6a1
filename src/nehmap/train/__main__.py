"""``python -m nehmap.train ARGS``: the same as ``nehmap train ARGS``.

For several GPUs: ``torchrun --nproc_per_node 4 -m nehmap.train --model unetrpp ...``.
"""

from __future__ import annotations

import sys

from nehmap.commands.train import main

if __name__ == "__main__":
    sys.exit(main())
