"""Inputs with nothing above their edge: what the shipped model adds there, and what it costs.

    python -m bench --sections nothing-to-add                        # inside the whole report
    python -m bench.nothing_to_add                                  # alone: the section on stdout
    python -m bench.nothing_to_add --update bench/RESULTS.md        # alone, into the report

The shipped model fills above the band edge it finds in its input (``audiosr.band.content_edge``,
searched in [0.8, 1.0] x the input's Nyquist frequency), whatever made that edge: a resampler's
filter, or an original whose own band ends there. On each held-out dev recording this section
builds targets at the target rate and their low-rate inputs (resampy ``kaiser_best``, rounded to
the 16-bit grid like users' files):

* ``full band``: the recording as it is (the normal case: the band above the edge was lost);
* ``band-limited at C kHz``: the recording low-passed at C = 10.2, 8 and 5 kHz (a linear-phase
  Kaiser FIR, 120 dB down from C on) is itself the target: there is nothing to add;
* ``tone``: the recording low-passed at 5 kHz plus a steady 9.5 kHz sine at -30 dB re its peak:
  a tone just under the edge, nothing above it.

Each is upsampled by the shipped model, by the same model with its invented band turned down by
60 dB ("the other side of the rule": nothing invented), by ``kaiser_best`` and by soxr VHQ, and
scored against its target: SNR, LSD, the share of files more than 3 dB below ``kaiser_best``, the
output's energy above the target's own band edge (what a method adds) and the error's below it (what
it changes of the band the target has).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import inspect
import math
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.common import DEFAULT_DEV_DIR, Context, dev_split, fmt, khz, log, portable, read_mono, script_command

TITLE = "10. Nothing to add: band-limited originals and a tone under the edge"

# The originals' own band edges (Hz): where kaiser_best leaves a 22.05 kHz input's content
# (10.2 kHz, inside the model's search range) and two below that range.
CUTS_HZ = (10_200.0, 8_000.0, 5_000.0)
# The band-limiting filter: 120 dB down from the cut on, its transition this wide below the cut.
CUT_WIDTH_HZ, CUT_ATTENUATION_DB = 250.0, 120.0
# The tone case: a bed low-passed at TONE_BED_HZ plus a steady sine TONE_DB below the bed's peak.
TONE_BED_HZ, TONE_HZ, TONE_DB = 5_000.0, 9_500.0, -30.0
# Each original's ends are faded over this (s), so that a cut at the crop makes no click.
FADE_S = 0.02
# Energy "above the edge" is counted from this far above it: the analysis window's main lobe.
GUARD_HZ = 100.0
# The analysis of that energy: Kaiser window (sidelobes far below any figure reported), frames inside the signal.
ANALYSIS_N_FFT, ANALYSIS_HOP, ANALYSIS_BETA = 4096, 1024, 20.0
# Below this (dB re the whole signal) a band counts as empty; figures are floored here.
EMPTY_DB = -150.0
# The level of the invented band on the other side of the rule (the lowest the output stage takes).
NO_INVENTION_GAIN_DB = -60.0


# --- the cases -------------------------------------------------------------------------------


def quantise16(x: np.ndarray) -> np.ndarray:
    """Rounded to the 16-bit grid (full scale 1.0), clipped to it, like a 16-bit file: float32."""
    return (np.clip(np.round(np.asarray(x, np.float64) * 32768.0), -32768, 32767) / 32768.0).astype(np.float32)


def faded(x: np.ndarray, rate: int, seconds: float = FADE_S) -> np.ndarray:
    """``(T,)`` with raised-cosine fades of ``seconds`` at both ends."""
    n = min(round(seconds * rate), x.shape[-1] // 2)
    ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(n) + 0.5) / max(n, 1))
    out = np.array(x, np.float32)
    out[:n] *= ramp
    out[x.shape[-1] - n:] *= ramp[::-1]
    return out


def band_limited(x: np.ndarray, rate: int, cut_hz: float) -> np.ndarray:
    """``(T,)`` low-passed at ``cut_hz``: a zero-phase Kaiser FIR, flat below ``cut - CUT_WIDTH_HZ``,
    ``CUT_ATTENUATION_DB`` down from ``cut_hz`` on (``audiosr.dsp.crossover_kernel``, zeros outside)."""
    import torch

    from audiosr.band import filter_each
    from audiosr.dsp import crossover_kernel

    kernel = torch.from_numpy(crossover_kernel(cut_hz - CUT_WIDTH_HZ, cut_hz, rate, CUT_ATTENUATION_DB))
    signal = torch.from_numpy(np.ascontiguousarray(x, np.float32)).reshape(1, 1, -1)
    return filter_each(signal, kernel).reshape(-1).numpy()


def tone_case(x: np.ndarray, rate: int) -> np.ndarray:
    """``(T,)``: ``x`` low-passed at ``TONE_BED_HZ`` plus a steady ``TONE_HZ`` sine ``TONE_DB`` below its peak."""
    bed = band_limited(x, rate, TONE_BED_HZ)
    amplitude = float(np.abs(bed).max()) * 10 ** (TONE_DB / 20)
    tone = amplitude * np.sin(2 * np.pi * TONE_HZ * np.arange(x.shape[-1]) / rate)
    return (bed + faded(tone.astype(np.float32), rate)).astype(np.float32)


@dataclass(frozen=True)
class Case:
    """One kind of target: how it is made from a recording, and where its own band ends (Hz)."""

    label: str
    edge_hz: float  # the target's own band edge: energy above it is what a method adds
    make: Callable[[np.ndarray, int], np.ndarray]


def cases(source_rate: int) -> list[Case]:
    """The normal case (its band above the input's Nyquist frequency was lost), then those with nothing to add."""
    from audiosr.dsp import nyquist

    found = [Case("full band", nyquist(source_rate), lambda x, rate: x)]
    for cut in CUTS_HZ:
        found.append(Case(f"band-limited at {cut / 1000:g} kHz", cut,
                          lambda x, rate, cut=cut: band_limited(x, rate, cut)))
    found.append(Case(f"{TONE_BED_HZ / 1000:g} kHz band + {TONE_HZ / 1000:g} kHz tone at {TONE_DB:g} dB", TONE_HZ,
                      tone_case))
    return found


def pair(original: np.ndarray, case: Case, rate: int, source_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """``(target (T,), input (T_low,))``: the case's target (peak at most ``audiosr.dsp.PEAK``) and its
    low-rate input (kaiser_best, 16-bit); the target cropped to the length upsampling gives back."""
    from audiosr.dsp import PEAK, output_length, resample

    target = case.make(faded(original, rate), rate)
    peak = float(np.abs(target).max())
    if peak > PEAK:
        target = target * np.float32(PEAK / peak)
    low = quantise16(resample(target, rate, source_rate, "kaiser_best"))
    return target[: output_length(low.shape[-1], source_rate, rate)], low


def power_spectrum(x: np.ndarray) -> np.ndarray:
    """``(T,)`` -> ``(ANALYSIS_N_FFT // 2 + 1,)``: mean power over Kaiser-windowed frames inside the signal (float64)."""
    x = np.asarray(x, np.float64)
    if x.shape[-1] < ANALYSIS_N_FFT:
        x = np.pad(x, (0, ANALYSIS_N_FFT - x.shape[-1]))
    frames = np.lib.stride_tricks.sliding_window_view(x, ANALYSIS_N_FFT)[::ANALYSIS_HOP]
    return np.square(np.abs(np.fft.rfft(frames * np.kaiser(ANALYSIS_N_FFT, ANALYSIS_BETA), axis=-1))).mean(axis=0)


def ratio_db(part: float, whole: float) -> float:
    """``10 log10(part / whole)``, floored at ``EMPTY_DB`` (and ``EMPTY_DB`` where ``whole`` is empty)."""
    return max(EMPTY_DB, 10 * math.log10(max(part / whole, 1e-300))) if whole > 0 else EMPTY_DB


def energy_above_db(x: np.ndarray, rate: int, hz: float) -> float:
    """The energy of ``(T,)`` above ``hz`` in dB relative to its whole energy (see :func:`power_spectrum`)."""
    power = power_spectrum(x)
    return ratio_db(power[np.fft.rfftfreq(ANALYSIS_N_FFT, 1 / rate) >= hz].sum(), power.sum())


# --- the methods ---------------------------------------------------------------------------


def model_without_invention(device: str) -> tuple[object | None, str]:
    """The shipped model with its invented band down ``NO_INVENTION_GAIN_DB``, and how that was asked.

    ``(None, why)`` where this installation's ``Upsampler`` has no such setting.
    """
    from audiosr.inference.upsampler import Upsampler

    # The cases of one recording go through as its channels: they must not share a band.
    quiet = {"device": device, "notice": lambda _: None, "shared_stereo": False}
    accepted = inspect.signature(Upsampler.__init__).parameters
    if "output_stage" in accepted:
        return (Upsampler.from_checkpoint(output_stage={"invented_gain_db": NO_INVENTION_GAIN_DB}, **quiet),
                f"`Upsampler.from_checkpoint(output_stage={{'invented_gain_db': {NO_INVENTION_GAIN_DB:g}}})`")
    if "invented_gain_db" in accepted:
        return (Upsampler.from_checkpoint(invented_gain_db=NO_INVENTION_GAIN_DB, **quiet),
                f"`Upsampler.from_checkpoint(invented_gain_db={NO_INVENTION_GAIN_DB:g})`")
    return None, "this `Upsampler` has no setting for the invented band's level"


@dataclass
class Scores:
    """Per-file figures of one method on one case."""

    snr: list[float]
    lsd: list[float]
    above_db: list[float]  # the output's energy above the target's edge, dB re the whole output
    error_below_db: list[float]  # the error's energy below it, dB re the whole target

    def add(self, values: tuple[float, float, float, float]) -> None:
        for found, value in zip((self.snr, self.lsd, self.above_db, self.error_below_db), values):
            found.append(value)


def score(estimate: np.ndarray, target: np.ndarray, rate: int, edge_hz: float) -> tuple[float, float, float, float]:
    """SNR (dB), LSD, and the energy above ``edge_hz + GUARD_HZ`` (dB re the whole output) and the error's below
    it (dB re the whole target) of ``estimate`` ``(T,)`` against ``target`` ``(T,)``."""
    import torch

    from audiosr.evaluation.metrics import lsd, snr

    est, ref = torch.from_numpy(np.ascontiguousarray(estimate, np.float32)), torch.from_numpy(target)
    above = np.fft.rfftfreq(ANALYSIS_N_FFT, 1 / rate) >= edge_hz + GUARD_HZ
    output, error = power_spectrum(estimate), power_spectrum(estimate - target)
    return (float(snr(est, ref)), float(lsd(est, ref)), ratio_db(output[above].sum(), output.sum()),
            ratio_db(error[~above].sum(), power_spectrum(target).sum()))


def edges_found(shipped, low: np.ndarray) -> list[float]:
    """Where the shipped model's output stage puts the edge of each row of ``low`` ``(C, T_low)`` (Hz), found on
    the whole signal (inference finds it per window); NaN where this installation's model does not say."""
    import torch

    from audiosr.dsp import nyquist, output_length, resample

    spec = shipped.spec
    stage = getattr(spec, "stage", None)
    if not hasattr(stage, "edges"):
        return [math.nan] * low.shape[0]
    n = output_length(low.shape[-1], spec.source_rate, spec.target_rate)
    rough = torch.from_numpy(resample(low, spec.source_rate, spec.target_rate, spec.input_filter, n))
    return [float(e) for e in stage.edges(rough[:, None], spec.target_rate, nyquist(spec.source_rate))]


MODEL, OFF = "audiosr (shipped)", "audiosr, nothing invented"


def run(ctx: Context) -> str:
    if ctx.dev is None:
        ctx.skipped = "skipped: no dev recordings"
        return f"Skipped: the dev recordings are not at `{ctx.args.dev_dir}`.\n"
    from audiosr.dsp import resample
    from audiosr.evaluation.comparison import BASELINES, WORSE_DB, markdown_table
    from audiosr.inference.upsampler import Upsampler

    seconds = float(getattr(ctx.args, "nothing_seconds", 8.0))
    files = ctx.dev.test[: getattr(ctx.args, "nothing_files", None) or None]
    shipped = Upsampler.from_checkpoint(device="cpu", notice=lambda _: None, shared_stereo=False)
    source_rate, rate = shipped.spec.source_rate, shipped.target_rate
    off, off_how = model_without_invention("cpu")
    # Every method maps (C, T_low) to (C, T_out); the cases of one recording are its channels (one call).
    methods: dict[str, Callable[[np.ndarray], np.ndarray]] = {MODEL: lambda low: shipped.upsample(low, source_rate)}
    if off is not None:
        methods[OFF] = lambda low: off.upsample(low, source_rate)
    for name in ("kaiser_best", "soxr_vhq"):
        methods[name] = lambda low, fn=BASELINES[name]: fn(low, source_rate, rate)

    all_cases = cases(source_rate)
    scores = {(c.label, m): Scores([], [], [], []) for c in all_cases for m in methods}
    own: dict[str, list[float]] = {c.label: [] for c in all_cases}
    found_edges: dict[str, list[float]] = {c.label: [] for c in all_cases}
    started = time.perf_counter()
    for i, path in enumerate(files):
        original, found = read_mono(path, seconds)
        if found != rate:
            original = resample(original, found, rate, "kaiser_best")
        targets, lows = zip(*(pair(original, case, rate, source_rate) for case in all_cases))
        low = np.stack(lows)
        for case, target, edge in zip(all_cases, targets, edges_found(shipped, low)):
            own[case.label].append(energy_above_db(target, rate, case.edge_hz + GUARD_HZ))
            found_edges[case.label].append(edge)
        for name, method in methods.items():
            for case, target, estimate in zip(all_cases, targets, np.asarray(method(low))):
                scores[case.label, name].add(score(estimate, target, rate, case.edge_hz))
        if (i + 1) % 10 == 0 or i + 1 == len(files):
            log(f"  {i + 1}/{len(files)} recordings, {time.perf_counter() - started:.0f} s")

    case_rows = [[c.label, khz(c.edge_hz), fmt(float(np.mean(own[c.label])), 1),
                  fmt(float(np.median(found_edges[c.label])) / 1000, 2),
                  f"{np.min(found_edges[c.label]) / 1000:.2f}-{np.max(found_edges[c.label]) / 1000:.2f}"]
                 for c in all_cases]
    rows, summary = [], {}
    for case in all_cases:
        reference = np.array(scores[case.label, "kaiser_best"].snr)
        for name in methods:
            s = scores[case.label, name]
            delta = np.array(s.snr) - reference
            figures = {"snr": float(np.mean(s.snr)), "delta": float(np.mean(delta)), "lsd": float(np.mean(s.lsd)),
                       "worse": 100.0 * float(np.mean(delta < -WORSE_DB)), "above": float(np.mean(s.above_db)),
                       "below": float(np.mean(s.error_below_db))}
            summary[case.label, name] = figures
            rows.append([case.label, name, fmt(figures["snr"]), f"{figures['delta']:+.2f}", fmt(figures["lsd"]),
                         fmt(figures["worse"], 1), fmt(figures["above"], 1), fmt(figures["below"], 1)])
    return (
        describe(ctx, files, seconds, shipped, off_how if off is not None else None)
        + markdown_table(["target", "its own edge (kHz)", "target above its edge (dB)",
                          "edge the model finds (kHz, median)", "(range)"], case_rows, left={0})
        + "\n"
        + markdown_table(["target", "method", "SNR (dB) ↑", "vs kaiser_best (dB)", "LSD ↓", "> 3 dB worse (%) ↓",
                          "output above the target's edge (dB)", "error below it (dB)"], rows, left={0, 1})
        + "\n" + findings(summary, all_cases, off is not None)
    )


def describe(ctx: Context, files: list[Path], seconds: float, shipped, off_how: str | None) -> str:
    from audiosr.dsp import nyquist

    nothing_invented = (
        f"the same weights with nothing invented ({off_how}: the band above the edge it finds "
        f"{NO_INVENTION_GAIN_DB:g} dB down, the other side of the rule); " if off_how is not None else
        "(this `Upsampler` has no setting for the invented band's level: `kaiser_best` stands for nothing invented); ")
    return (
        "The rule today: the shipped model fills above the band edge it finds in its input "
        "(`audiosr.band.content_edge`: a cliff searched between 0.8 and 1.0 x the input's Nyquist frequency; where "
        f"none is found, the Nyquist frequency, {khz(nyquist(shipped.spec.source_rate))} kHz), whatever made that edge. "
        "Here most originals themselves end below the input's Nyquist frequency: there is nothing to add. "
        f"Material: the first {seconds:g} s of each of the {len(files)} test-split dev recordings "
        f"({ctx.dev.describe(files)}), ends faded over {FADE_S * 1000:g} ms. Targets at {khz(shipped.target_rate)} kHz: "
        "each recording as it is (full band: the normal case, its edge the input's Nyquist frequency), low-passed at "
        f"{', '.join(f'{c / 1000:g}' for c in CUTS_HZ)} kHz (zero-phase Kaiser FIR, flat to "
        f"{CUT_WIDTH_HZ:g} Hz below the cut, {CUT_ATTENUATION_DB:g} dB down from the cut on), and low-passed at "
        f"{TONE_BED_HZ / 1000:g} kHz plus a steady {TONE_HZ / 1000:g} kHz sine {-TONE_DB:g} dB below its peak "
        "(its edge the tone); any target peaking above 0.95 scaled down to it. "
        f"Inputs: each target made {khz(shipped.spec.source_rate)} kHz with resampy `kaiser_best` and rounded to the "
        f"16-bit grid. Methods: the shipped model (`Upsampler.from_checkpoint()`: {shipped.generator.extra_repr()}); "
        f"{nothing_invented}resampy `kaiser_best`; soxr VHQ. SNR and LSD (`audiosr.evaluation.metrics`) are means "
        "over the files; > 3 dB worse: the share of files whose SNR is more than 3 dB below `kaiser_best`'s. "
        f"*Above the edge*: energy from {GUARD_HZ:g} Hz above the target's own edge up, in dB relative to the whole "
        f"signal, mean over the files (Kaiser-windowed power spectrum, {ANALYSIS_N_FFT} points; {EMPTY_DB:g}: empty); "
        "*error below it*: the energy of output minus target below that frequency, in dB relative to the whole "
        "target (what a method changed of the band the target has; the SNR's error is the sum of the two). "
        "*The edge the model finds*: its output stage's edge on the whole rough input (inference finds it per "
        "window).\n\n"
    )


def findings(summary: dict, all_cases: list[Case], with_off: bool) -> str:
    """One paragraph that reads the table: the cost of inventing where nothing is missing, the gain where it is."""
    def diff(case: Case, method: str, key: str) -> float:
        return summary[case.label, method][key] - summary[case.label, "kaiser_best"][key]

    normal, rest = all_cases[0], all_cases[1:]
    text = (f"Against `kaiser_best` of the same input, the shipped model: {normal.label} {diff(normal, MODEL, 'snr'):+.2f} dB "
            f"SNR, LSD {diff(normal, MODEL, 'lsd'):+.2f}; "
            + "; ".join(f"{c.label} {diff(c, MODEL, 'snr'):+.2f} dB, LSD {diff(c, MODEL, 'lsd'):+.2f}, "
                        f"{summary[c.label, MODEL]['worse']:.0f} % of files > 3 dB worse" for c in rest) + ".")
    if with_off:
        text += (f" With nothing invented: {normal.label} {diff(normal, OFF, 'snr'):+.2f} dB, LSD "
                 f"{diff(normal, OFF, 'lsd'):+.2f}; "
                 + "; ".join(f"{c.label} {diff(c, OFF, 'snr'):+.2f} dB, LSD {diff(c, OFF, 'lsd'):+.2f}" for c in rest) + ".")
    return text + "\n"


# --- run alone -----------------------------------------------------------------------------


def replace_section(report: str, title: str, body: str) -> str:
    """``report`` with the section headed ``## title`` replaced by ``body`` (its heading included),
    or ``body`` inserted before ``## Runtime of this run`` (else at the end) where it has none."""
    lines = report.splitlines()
    heading = f"## {title}"
    new = body.rstrip("\n").splitlines() + [""]
    if heading in lines:
        start = lines.index(heading)
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        lines[start:end] = new
    else:
        at = next((i for i, line in enumerate(lines) if line.startswith("## Runtime of this run")), len(lines))
        lines[at:at] = new
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.nothing_to_add", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dev-dir", type=Path, default=DEFAULT_DEV_DIR, help="dev recordings (default %(default)s)")
    parser.add_argument("--nothing-seconds", type=float, default=8.0, help="seconds of each recording (default %(default)s)")
    parser.add_argument("--nothing-files", type=int, default=None, help="only the first N test recordings (default: all)")
    parser.add_argument("--update", type=Path, default=None,
                        help="write the section into this report (replacing its own), else print it")
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="audiosr-bench-"))
    try:
        ctx = Context(args, tmp, dev_split(args.dev_dir.resolve()))
        start = time.perf_counter()
        body = run(ctx)
        status = ctx.skipped or "ok"
        date = _dt.datetime.now().astimezone().isoformat(timespec="seconds")
        section = (f"## {TITLE}\n\n*Section runtime {time.perf_counter() - start:.0f} s; status: {status}. Measured alone "
                   f"on {date}, not in the run above:*\n\n```\n{script_command()}\n```\n\n{body}")
        section = portable(section, args.dev_dir, tmp)
        if args.update is None:
            print(section)
        else:
            args.update.write_text(replace_section(args.update.read_text(), TITLE, section))
            log(f"section written into {args.update}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if ctx.skipped else 0


if __name__ == "__main__":
    raise SystemExit(main())
