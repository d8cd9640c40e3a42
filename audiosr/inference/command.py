"""``audiosr upsample``: upsample audio files and folders.

    audiosr upsample talk.wav music/ --output_dir out/                   # the shipped model
    audiosr upsample --ckpt_path best.ckpt talk.wav music/ --output_dir out/

Without ``--ckpt_path`` the small default model that ships with audiosr is used.
Folders are searched recursively for audio files (by suffix; hidden files skipped);
outputs keep their path relative to the folder given, and a file given directly goes
straight into the output folder. Every channel is upsampled. Outputs keep the input's
container and sample format where it can hold the target rate and loses nothing; a lossy
input (MP3, Vorbis, Opus, ...) is written as FLAC, since encoding it again would throw away
the band the model adds (``--format same`` keeps the input's encoding, ``flac`` / ``wav`` force one).
Existing outputs are skipped unless ``--overwrite``; an input is never overwritten. An
output appears only when complete: a file that fails half-way leaves nothing behind.

Input at the model's source rate is used as is; input below it is first resampled to it
(soxr VHQ; one line says so); input between the source and the target rate keeps its own
content up to its own Nyquist frequency and the model fills only above it. Input already
at or above the target rate fails, unless ``--passthrough``: then it is copied byte for
byte, at its own rate, to where its output would go. A model for any input takes every rate:
it brings the file to the target rate and fills above the edge it finds (a 44.1 kHz MP3 cut at
16 kHz gets 16-22 kHz); a file whose content already reaches the top is written unchanged, and
one line says that nothing was added. Input with NaN or infinite samples
fails, unless ``--nonfinite zero`` replaces them with zeros.

Nothing is clipped or cut short without a word. Output samples beyond full scale, in a
format that cannot hold them (any but float), are clipped by default, and every such file
is named with the count and the peak; ``--overload scale`` lowers each such file to fit
instead, ``--overload float`` writes 32-bit float (in WAV where the container has no
float samples). A file shorter than its header says (cut short) fails, naming both
lengths, unless ``--truncated keep`` upsamples what can be read. A full disk stops the
run: every later file would fail too.

Exit status:
    0    every file written, copied or skipped because its output exists
    1    at least one file failed (unreadable, not audio, empty, cut short, a broken link,
         NaN or infinite samples, rate at or above the target, write error); the others
         were still processed, and the summary counts every failure
    2    usage error, before any file is processed: an input path that does not exist,
         a folder without audio files, an output folder that cannot be written, a bad
         checkpoint or a bad option
    3    stopped early: the output drive is full; the summary says which files were not
         processed (free space and run again: finished outputs are skipped)
    130  interrupted
Each failure is one line on stderr naming the path and the problem; the summary names
every clipped file again.
"""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from audiosr.audio_io import AUDIO_EXTENSIONS, CONTAINERS, list_audio
from audiosr.inference.windowing import DEFAULT_OVERLAP, DEFAULT_WINDOW
from audiosr.output_stage import OutputStage, parse_setting

if TYPE_CHECKING:
    from tqdm import tqdm

    from audiosr.inference.upsampler import Upsampler

PROG = "audiosr upsample"
MAX_LISTED = 20  # files named one per line when a stopped run leaves more unprocessed
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_STOPPED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


class UsageError(Exception):
    """A problem with the command line as a whole; nothing is processed."""


class Stopped(Exception):
    """The run cannot go on (the output drive is full); the message says why."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # One line, like every other failure of this command, instead of usage + error.
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    exit_codes = __doc__[__doc__.index("Exit status:"):__doc__.index("Each failure")] if __doc__ else None
    parser = _Parser(
        prog=PROG,
        description="Upsample audio files and folders (recursively) to the model's target rate.",
        epilog=exit_codes,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("inputs", nargs="+", type=Path, metavar="IN", help="audio files or folders")
    parser.add_argument("--ckpt_path", type=Path, default=None,
                        help="trained audiosr checkpoint or generator file (default: the model shipped with audiosr)")
    parser.add_argument("--output_dir", "-o", type=Path, required=True, help="where outputs go (created)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    parser.add_argument("--format", choices=CONTAINERS, default="auto",
                        help="output container: auto (default) keeps the input's where it can hold the target rate "
                             "and is lossless, else FLAC; same keeps it even when lossy (the encoder then drops "
                             "much of the band the model adds); flac or wav always")
    parser.add_argument("--passthrough", action="store_true",
                        help="copy inputs already at or above the target rate unchanged instead of failing")
    parser.add_argument("--nonfinite", choices=("error", "zero"), default="error",
                        help="input with NaN or infinite samples: fail the file (default) or replace them with zeros")
    parser.add_argument("--overload", choices=("clip", "scale", "float"), default="clip",
                        help="output samples beyond full scale: clip them and name the file (default), scale "
                             "each such file down to fit, or write 32-bit float, which holds them")
    parser.add_argument("--truncated", choices=("error", "keep"), default="error",
                        help="input shorter than its header says: fail the file (default) or upsample what can be read")
    parser.add_argument("--report", type=Path, default=None, metavar="DIR",
                        help="also write a listening page, DIR/report.html: players and spectrograms of input and "
                             "output for the first --report_files written files, and the run's summary")
    parser.add_argument("--report_files", type=int, default=8, metavar="N",
                        help="files with players on the --report page (default %(default)s)")
    stage = parser.add_argument_group("output stage", "what happens after the network; default: what the model "
                                      "ships with (its checkpoint's stage, see its card)")
    for setting in fields(OutputStage):  # one option per setting of the stage
        stage.add_argument(f"--{setting.name}", type=functools.partial(stage_value, name=setting.name), default=None,
                           metavar="VALUE", help=setting.metadata["help"])
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="say more: the model's settings (its output stage included)")
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    parser.add_argument("--precision", choices=("32", "bf16", "16"), default="32",
                        help="network precision (default %(default)s: float32, what `audiosr test` reports)")
    parser.add_argument("--batch_size", type=int, default=1, help="windows per network call; raise on a GPU")
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="CPU threads: windows refined at once, one thread each (default: the cores this process "
                             "may use, its affinity and any container quota: one thread per core, never more)")
    parser.add_argument("--window", type=float, default=DEFAULT_WINDOW, help="seconds per window (default %(default)s)")
    parser.add_argument("--overlap", type=float, default=DEFAULT_OVERLAP,
                        help="seconds cross-faded between windows, at most half a window (default %(default)s)")
    parser.add_argument("--context", type=float, default=None,
                        help="seconds of extra, discarded network input each side of a window "
                             "(default: the model's receptive field)")
    return parser


def usable_cores(cgroup: Path = Path("/sys/fs/cgroup")) -> int:
    """The CPUs this process may run on: its affinity, capped by a cgroup CPU quota (a container's
    ``--cpus``; cgroup v2's ``cpu.max`` or v1's ``cpu.cfs_quota_us``). A thread per core and no
    more: threads that share a core wait on each other.
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    quota = cgroup_quota(cgroup)
    return max(1, min(cores, quota) if quota else cores)


def cgroup_quota(root: Path) -> int | None:
    """Whole CPUs a cgroup CPU quota allows (at least 1), or None where there is none."""
    v1 = [(root / d / "cpu.cfs_quota_us", root / d / "cpu.cfs_period_us") for d in ("cpu", "cpu,cpuacct")]
    for quota_file, period_file in [(root / "cpu.max", None), *v1]:
        try:
            if period_file is None:
                quota, period = quota_file.read_text().split()[:2]
            else:
                quota, period = quota_file.read_text().strip(), period_file.read_text().strip()
        except (OSError, ValueError):
            continue
        if quota in ("max", "-1"):
            return None
        try:
            return max(1, int(quota) // int(period))
        except ValueError:
            return None
    return None


def stage_value(text: str, name: str | None = None) -> Any:
    """An output-stage option: a number, ``auto``, ``LO,HI``, ``off``, or the words its setting takes
    (checked by the stage itself)."""
    try:
        return parse_setting(text, name)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def stage_changes(args: argparse.Namespace) -> dict[str, Any]:
    """The output-stage settings given on the command line (``off`` is given: it is ``None``)."""
    given = {s.name for s in fields(OutputStage)} & getattr(args, "_given", set())
    return {name: getattr(args, name) for name in sorted(given)}


def is_earlier_output(path: Path, output_dir: Path, folder: Path) -> bool:
    """Whether ``path`` is in ``output_dir`` nested within ``folder``: an earlier run's output."""
    out = output_dir.resolve()
    return out != folder.resolve() and path.resolve().is_relative_to(out)


def collect(inputs: list[Path], output_dir: Path) -> list[tuple[Path, Path]]:
    """``(input file, output path relative to the output folder)`` for every input."""
    jobs = []
    for given in inputs:
        if given.is_dir():
            # Broken links and unreadable files are kept: they fail by name, and count.
            found = [path for path in list_audio(given) if not is_earlier_output(path, output_dir, given)]
            if not found:
                suffixes = ", ".join(sorted(AUDIO_EXTENSIONS))
                raise UsageError(f"{given}: no audio files in this folder (looked for {suffixes})")
            jobs += [(path, path.relative_to(given)) for path in found]
        elif given.exists() or given.is_symlink():
            jobs.append((given, Path(given.name)))
        else:
            raise UsageError(f"{given}: no such file or folder")
    # A file named twice (directly and inside a folder given too) is done once.
    unique: dict[Path, tuple[Path, Path]] = {}
    for src, relative in jobs:
        unique.setdefault(src.resolve() if src.exists() else src.absolute(), (src, relative))
    return list(unique.values())


def prepare_output_dir(output_dir: Path, what: str = "output folder") -> None:
    if output_dir.exists() and not output_dir.is_dir():
        raise UsageError(f"{output_dir}: {what} is an existing file")
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        # Permissions alone do not tell (root, read-only mounts): try it.
        tempfile.TemporaryFile(dir=output_dir).close()
    except OSError as error:
        raise UsageError(f"{output_dir}: cannot write to the {what} ({error.strerror or error})") from None


def describe(error: BaseException) -> str:
    return getattr(error, "error_string", None) or str(error) or type(error).__name__


class Run:
    """Upsamples one file at a time, reports failures as they happen, keeps the tally."""

    def __init__(self, upsampler: Upsampler, args: argparse.Namespace, say: Callable[[str], None]) -> None:
        self.upsampler, self.args, self.say = upsampler, args, say
        self.counts = {"written": 0, "copied": 0, "skipped": 0, "failed": 0}
        self.claimed: dict[Path, Path] = {}  # output -> the input it came from, this run
        self.failures: list[tuple[Path, str]] = []
        self.overloads: list[tuple[Path, str]] = []  # outputs beyond full scale, what became of them
        self.written: list[tuple[Path, Path]] = []  # (input, output) of the first files upsampled

    def __call__(self, src: Path, relative: Path, progress: tqdm) -> None:
        """Processes one file; raises :class:`Stopped` when no later file can succeed either."""
        from audiosr.audio_io import DiskFullError

        try:
            status, problem = self.process(src, relative, progress)
        except DiskFullError as error:
            self.failures.append((src, str(error)))
            self.counts["failed"] += 1
            raise Stopped(str(error)) from None
        if problem:
            self.say(f"{PROG}: {src}: {problem}")
        if status == "failed":
            self.failures.append((src, problem or "failed"))
        self.counts[status] += 1

    def process(self, src: Path, relative: Path, progress: tqdm) -> tuple[str, str | None]:
        """``(status, problem)``; status is a key of ``counts``."""
        import soundfile as sf

        from audiosr.audio_io import LOSSY_SUBTYPES, SUFFIXES, DiskFullError, atomic_output, can_write, output_format
        from audiosr.inference.upsampler import overload_message

        target = self.upsampler.target_rate
        if src.is_symlink() and not src.exists():
            return "failed", f"broken link (to {os.readlink(src)})"
        try:
            info = sf.info(str(src))
        except Exception as error:
            return "failed", f"not a readable audio file ({describe(error)})"
        if info.frames == 0:
            return "failed", "empty: no samples to upsample"
        copy = info.samplerate >= target and not self.upsampler.spec.any_input  # a model for any input takes every rate
        if copy and not self.args.passthrough:
            return "failed", (f"sample rate {info.samplerate} Hz is already at or above the model's target "
                              f"rate {target} Hz (--passthrough copies such files unchanged)")
        fmt, subtype = (info.format, info.subtype) if copy else output_format(
            info.format, info.subtype, info.channels, target, floating=self.args.overload == "float",
            container=self.args.format)
        dst = self.args.output_dir / (relative if fmt == info.format else relative.with_suffix(SUFFIXES[fmt]))
        if dst.exists() and os.path.samefile(dst, src):
            return "failed", "its output would replace the input; choose another --output_dir"
        if dst in self.claimed:
            return "failed", f"its output {dst} was already written from {self.claimed[dst]} in this run"
        if dst.exists() and not self.args.overwrite:
            return "skipped", None
        self.claimed[dst] = src
        try:
            if copy:
                with atomic_output(dst) as partial:
                    shutil.copyfile(src, partial)
                return "copied", None
            asked = info.format if self.args.format in ("auto", "same") else self.args.format.upper()
            if fmt != asked:  # every change from what was asked is said, with its reason
                storable = can_write(asked, info.subtype, target, info.channels)
                if self.args.format == "auto" and info.subtype in LOSSY_SUBTYPES and storable:
                    why = "is lossy: encoding it again would drop the band the model adds (--format same keeps it)"
                elif self.args.overload == "float" and not can_write(asked, "FLOAT", target, info.channels):
                    why = "has no float samples (--overload float)"
                else:
                    why = f"cannot store {target} Hz"
                what = f"{asked}/{info.subtype}" if asked == info.format else asked
                self.say(f"{src}: {what} {why}; writing {fmt}/{subtype} instead")
            progress.reset(total=round(info.duration, 2))
            # Whether an existing output is replaced (--overwrite) or skipped was decided above.
            report = self.upsampler.upsample_file(src, dst, format=fmt, subtype=subtype, overload=self.args.overload,
                                                  truncated=self.args.truncated, overwrite=True,
                                                  on_progress=progress.update)
        except DiskFullError:
            raise
        except Exception as error:
            return "failed", describe(error)
        if len(self.written) < self.args.report_files:  # kept only for the --report page
            self.written.append((src, dst))
        if report.over:
            self.overloads.append((dst, overload_message(report)))
            return "written", overload_message(report)
        return "written", None


def write_listening_page(directory: Path, written: list[tuple[Path, Path]], summary: list[str], spec: Any,
                         say: Callable[[str], None]) -> Path:
    """``directory/report.html``: input and output players and spectrograms of ``written``, and the summary.

    A file that cannot be shown (its input changed or went away meanwhile) is named on the page and skipped.
    """
    from audiosr.evaluation.listening import ListeningReport

    report = ListeningReport(directory, f"{PROG}: {len(written)} file{'s' if len(written) != 1 else ''} shown")
    report.intro = [f"Model: {spec.describe()}"]
    report.summary = list(summary)
    for src, dst in written:
        try:
            _show(report, src, dst)
        except Exception as error:
            report.summary.append(f"not shown on this page: {src}: {describe(error)}")
            say(f"{src}: not shown on the listening page ({describe(error)})")
    return report.write()


def _show(report: Any, src: Path, dst: Path) -> None:
    """One input/output pair on the page: the output's loudest excerpt (looked for in its first
    minute, read alone) and the same stretch of the input, at its own rate."""
    import soundfile as sf

    from audiosr.evaluation.listening import loudest_span

    with sf.SoundFile(str(dst)) as out:
        head = out.read(min(out.frames, 60 * out.samplerate), dtype="float32", always_2d=True).T
        rate = out.samplerate
    start, end = loudest_span(head, rate, report.excerpt_seconds)
    output = head[:, round(start * rate):round(end * rate)]
    with sf.SoundFile(str(src)) as given:
        given.seek(min(given.frames, round(start * given.samplerate)))
        low = given.read(round((end - start) * given.samplerate), dtype="float32", always_2d=True).T
        low_rate = given.samplerate
    label = f"output ({dst.name})"
    report.add_recording(str(src), {f"input ({src.name})": (low, low_rate), label: (output, rate)},
                         label, rate, low_rate / 2, why=f"-> {dst}")


def usage_error(message: str) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.window <= 0 or args.overlap < 0 or (args.context is not None and args.context < 0):
        parser.error("--window must be > 0, --overlap and --context >= 0")
    if args.overlap > args.window / 2:
        parser.error(f"--overlap {args.overlap} s must be at most half of --window {args.window} s")
    if args.batch_size < 1:
        parser.error(f"--batch_size must be >= 1, got {args.batch_size}")
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    if args.report_files < 0:
        parser.error(f"--report_files must be >= 0, got {args.report_files}")
    args._given = {a.lstrip("-").split("=")[0] for a in (sys.argv[1:] if argv is None else argv) if a.startswith("--")}
    try:
        OutputStage().replace(**stage_changes(args))  # the stage's own checks, before any file is touched
    except ValueError as error:
        parser.error(str(error))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        jobs = collect(args.inputs, args.output_dir)
        prepare_output_dir(args.output_dir)
        if args.report is not None:
            prepare_output_dir(args.report, "report folder")
    except UsageError as error:
        return usage_error(str(error))

    # Torch loads only now, so the usage errors above come back at once.
    from tqdm import tqdm

    from audiosr.inference.upsampler import Upsampler, default_checkpoint
    from audiosr.models.checkpoint import load_generator

    def say(message: str) -> None:
        tqdm.write(message, file=sys.stderr)

    import torch

    threads = args.threads or usable_cores()
    torch.set_num_threads(threads)  # torch's own default may count a host's cores, not this process's

    try:
        checkpoint = args.ckpt_path if args.ckpt_path is not None else default_checkpoint()
        generator = load_generator(checkpoint)
    except Exception as error:
        return usage_error(f"{args.ckpt_path or 'the default model'}: not a usable audiosr checkpoint ({describe(error)})")
    if args.ckpt_path is None:
        say(f"{PROG}: using the default model shipped with audiosr"
            + (f" ({generator.spec.describe()})" if args.verbose else " (-v: its settings)"))
    elif args.verbose:
        say(f"{PROG}: {checkpoint}: {generator.spec.describe()}")
    if args.verbose:
        say(f"{PROG}: {threads} CPU thread{'s' if threads > 1 else ''}"
            + ("" if args.threads else " (the cores this process may use; --threads sets it)"))
    try:
        upsampler = Upsampler(generator, device=args.device, window=args.window, overlap=args.overlap,
                              context=args.context, batch_size=args.batch_size, workers=threads,
                              precision=args.precision, nonfinite=args.nonfinite, output_stage=stage_changes(args), notice=say)
    except Exception as error:  # the options are checked above, so the device
        return usage_error(f"--device {args.device}: {describe(error)}")

    run = Run(upsampler, args, say)
    done, stopped = 0, None
    try:
        # disable=None: bars only on a terminal, so logs and pipes get plain lines.
        with tqdm(jobs, desc="files", unit="file", disable=None, file=sys.stderr) as files, \
                tqdm(desc="audio", unit="s", leave=False, disable=None, file=sys.stderr) as audio:
            for src, relative in files:
                done += 1
                run(src, relative, audio)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Stopped as error:
        stopped = str(error)

    c = run.counts
    copied = f" ({c['copied']} copied unchanged)" if c["copied"] else ""
    clipped = f" ({len(run.overloads)} beyond full scale, below)" if run.overloads else ""
    summary = [f"{c['written'] + c['copied']} written{copied}{clipped}, {c['skipped']} skipped (output exists; "
               f"--overwrite replaces), {c['failed']} failed -> {args.output_dir}"]
    summary += [f"beyond full scale: {dst}: {what}" for dst, what in run.overloads]
    summary += [f"failed: {src}: {problem}" for src, problem in run.failures]
    print(f"{PROG}: {summary[0]}", file=sys.stderr)
    for line in summary[1:]:
        print(f"  {line}", file=sys.stderr)
    if stopped is not None:
        left = jobs[done:]
        shown = "".join(f"\n  not processed: {src}" for src, _ in left[:MAX_LISTED])
        more = f"\n  ... and {len(left) - MAX_LISTED} more" if len(left) > MAX_LISTED else ""
        print(f"{PROG}: stopped: {stopped}; {len(left)} file{'s' if len(left) != 1 else ''} not processed"
              f"{shown}{more}\n  free space and run again: finished outputs are skipped", file=sys.stderr)
        if args.report is not None:
            print(f"{PROG}: no listening report: the run stopped", file=sys.stderr)
        return EXIT_STOPPED
    status = EXIT_FAILED if c["failed"] else EXIT_OK
    if args.report is not None:
        try:
            page = write_listening_page(args.report, run.written, summary, generator.spec, say)
            print(f"{PROG}: listening report: {page} (open it in a browser)", file=sys.stderr)
        except Exception as error:
            print(f"{PROG}: the listening report could not be written to {args.report} ({describe(error)})",
                  file=sys.stderr)
            status = EXIT_FAILED
    return status


if __name__ == "__main__":
    raise SystemExit(main())
