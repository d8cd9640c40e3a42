"""The ``audiosr`` command: ``fit`` / ``validate`` / ``test`` (LightningCLI) and ``upsample``.

Only this dispatch runs at start-up: ``audiosr upsample`` never imports Lightning, and
``audiosr upsample --help`` answers without importing torch.
"""

from __future__ import annotations

import sys


def main(args: list[str] | None = None) -> None:
    argv = sys.argv[1:] if args is None else args
    if argv[:1] == ["upsample"]:
        from audiosr.inference.command import main as upsample_main

        raise SystemExit(upsample_main(argv[1:]))
    from audiosr.training.cli import main as lightning_main

    lightning_main(args)


if __name__ == "__main__":
    main()
