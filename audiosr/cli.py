"""The ``audiosr`` command: ``upsample``, ``shards``, and ``fit`` / ``validate`` / ``test`` (LightningCLI).

Only this dispatch runs at start-up: ``audiosr``, ``audiosr --help`` and ``audiosr upsample`` never
import Lightning, and ``audiosr upsample --help`` answers without importing torch.
"""

from __future__ import annotations

import sys

# Every command with its one line, the main job first.
COMMANDS = {
    "upsample": "restore the top band of audio files with a trained model (default: the one shipped with audiosr)",
    "fit": "train a model: audiosr fit --config configs/magphase.yaml (add --ckpt_path last to resume)",
    "validate": "score a checkpoint on the validation split",
    "test": "compare a checkpoint with classical resampling on the test split: table, plots, listening page",
    "shards": "write a corpus once as shards to train from: audiosr shards write --train DIR --output SHARDS",
}
HELP = "\n".join([
    "usage: audiosr <command> [options]",
    "",
    "Neural audio super-resolution: turn 22.05 kHz audio into full-band 44.1 kHz audio.",
    "",
    "commands:",
    *(f"  {name:<9} {line}" for name, line in COMMANDS.items()),
    "",
    "`audiosr <command> --help` lists a command's options.",
])


def main(args: list[str] | None = None) -> None:
    argv = sys.argv[1:] if args is None else args
    command = argv[0] if argv else None
    if command in ("-h", "--help"):
        print(HELP)
        raise SystemExit(0)
    if command is None or command.startswith("-") and command not in ("--config", "-c"):
        print(HELP, file=sys.stderr)
        raise SystemExit(2)
    if command == "upsample":
        from audiosr.inference.command import main as upsample_main

        raise SystemExit(upsample_main(argv[1:]))
    if command == "shards":
        from audiosr.data.shards import main as shards_main

        raise SystemExit(shards_main(argv[1:]))
    if command == "predict":
        print("audiosr: predict is not offered; `audiosr upsample --ckpt_path CKPT IN... --output_dir OUT` runs a "
              "checkpoint on audio files", file=sys.stderr)
        raise SystemExit(2)
    if command not in COMMANDS and command not in ("--config", "-c"):
        print(f"audiosr: no command {command!r}\n\n{HELP}", file=sys.stderr)
        raise SystemExit(2)
    from audiosr.training.cli import main as lightning_main

    lightning_main(args)


if __name__ == "__main__":
    main()
