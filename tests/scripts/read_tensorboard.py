"""Reads a TensorBoard log folder back with tbparse (on TensorBoard's own reader) and prints
what it found as JSON: every scalar (run, tag, step, value) and every HParams value (run, name,
value) — what tests/tests/tensorboard_export.rs compares with the registry."""

import json
import sys

from tbparse import SummaryReader


def main(log_dir):
    reader = SummaryReader(log_dir, extra_columns={"dir_name"})
    scalars = reader.scalars
    hparams = reader.hparams
    out = {
        "scalars": [
            [row.dir_name, row.tag, int(row.step), float(row.value)]
            for row in scalars.itertuples()
        ],
        "hparams": [
            [row.dir_name, row.tag, row.value if isinstance(row.value, str) else float(row.value)]
            for row in hparams.itertuples()
        ],
    }
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1])
