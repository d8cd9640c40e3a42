"""Built-in synthetic training corpus: deterministic clips with real content up to ~21 kHz.

The project must train and be tested without downloading audio, so it ships a corpus
that is computed rather than stored: :func:`synthesize` turns a seed into a clip, and
:func:`corpus_seed` gives the train/val/test splits disjoint seeds.

The corpus is built to make 22.05 kHz -> 44.1 kHz bandwidth extension non-trivial. A
model can only learn to restore the 11-22 kHz band if that band holds structured
content whose relation to the low band varies from sound to sound, so every clip is a
random mixture of events of four kinds:

1. harmonic tones: notes with vibrato and many partials (up to ~21 kHz) whose
   amplitudes fall with partial number and decay over time, optionally inharmonic;
2. speech-like utterances: a glottal harmonic series with an intonation contour,
   shaped by gliding formants (additive synthesis of every harmonic below the
   anti-alias taper), with "s"/"sh"/"f"-like fricative noise;
3. percussion: kick/snare/hat/click/tom/metal hits from damped modes and noise;
4. coloured noise bursts (white to brown, optionally band-limited and modulated).

Layers of such events, near-silent gaps and a -65..-80 dB noise floor make up a clip,
peak-normalised to ``audiosr.dsp.PEAK`` (0.95), like recordings. Sources stay below ``0.48 * sample_rate``: partials and noise
spectra fade out between ``0.45`` and ``0.48`` times the rate (21.2 kHz at 44.1 kHz),
and percussion, whose sub-millisecond attacks would spread a band, is band-limited
again once synthesised. A clip made at a lower rate is thus free of aliasing, like a
real recording (measured over hundreds of clips: under -70 dB of the energy lies above
``0.485 * sample_rate``).

Everything is drawn from ``numpy.random.default_rng`` generators seeded from the clip's
seed (never global state or ``hash()``), so a clip is bit-identical from run to run;
another CPU or numpy version may round numpy's vectorised ``sin``/``exp`` and FFTs
differently in the last bits. Event parameters come from one generator and noise from
others, so a seed makes the same events at every sample rate. The work is vectorised
over samples: a 4 s clip at 44.1 kHz takes about 50 ms of one CPU core.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from audiosr.dsp import PEAK  # every clip peaks here, like a normalised recording

# Control-rate step (samples) for contours and partial amplitudes: ~1.5 ms at 44.1 kHz
# is smooth enough for vibrato and formant glides, and the partial amplitudes are
# linearly interpolated in between so that no zipper noise leaks into the high band.
_HOP = 64

# Anti-alias taper, as fractions of the sample rate: full level below the first, silent
# above the second (0.48 * 44.1 kHz = 21.2 kHz).
_TAPER_START = 0.45
_TAPER_STOP = 0.48

# Partials below this fraction of the loudest cost time and add nothing audible.
_NEGLIGIBLE = 1e-5

_SPLIT_BASES = {"train": 1, "val": 2, "test": 3}
_SPLIT_STRIDE = 10**9


def corpus_seed(split: str, index: int) -> int:
    """Seed of clip ``index`` of ``split`` ("train", "val" or "test").

    Each split owns a disjoint range of ``10**9`` seeds, so the splits never share a clip.
    """
    if split not in _SPLIT_BASES:
        raise ValueError(f"unknown split {split!r}; choose one of {tuple(_SPLIT_BASES)}")
    if not 0 <= index < _SPLIT_STRIDE:
        raise ValueError(f"index must be in [0, {_SPLIT_STRIDE}), got {index}")
    return _SPLIT_BASES[split] * _SPLIT_STRIDE + index


def synthesize(seed: int, sample_rate: int = 44100, seconds: float = 4.0) -> np.ndarray:
    """One deterministic clip of the corpus.

    Args:
        seed: non-negative integer; see :func:`corpus_seed`.
        sample_rate: Hz; content stays below ``0.48 * sample_rate``.
        seconds: clip duration.

    Returns:
        float32 array ``(T,)``, ``T = round(seconds * sample_rate)``, peak ``PEAK``.
    """
    n = round(seconds * sample_rate)
    params = np.random.default_rng([seed, 0])
    mix = np.zeros(n, dtype=np.float32)
    for index, (kind, start, duration) in enumerate(_schedule(params, seconds)):
        noise = np.random.default_rng([seed, 1, index])
        event = _SOUND_KINDS[kind](params, noise, sample_rate, duration)
        # Events are peak-normalised, then set within 18 dB of each other.
        gain = 10 ** (params.uniform(-18.0, 0.0) / 20) / max(float(np.abs(event).max()), 1e-12)
        _fade_out(event, sample_rate)
        begin = round(start * sample_rate)
        event = event[: n - begin]
        mix[begin : begin + event.size] += gain * event
    mix *= _gap_gain(params, n, sample_rate)
    floor_level = 10 ** (params.uniform(-80.0, -65.0) / 20)
    if n == 0:
        return mix
    # The floor's level is relative to the peak, which is scaled to PEAK below.
    peak = float(np.abs(mix).max())
    floor = _shaped_noise(np.random.default_rng([seed, 2]), n, sample_rate, np.ones_like)
    mix += (floor_level * (peak if peak > 0 else 1.0)) * floor
    mix *= PEAK / float(np.abs(mix).max())
    return mix


# --- clip layout ---------------------------------------------------------------------

# Event durations (seconds) per kind, in the order of _SOUND_KINDS.
_DURATIONS = ((0.3, 2.0), (0.5, 2.0), (0.2, 1.5), (0.1, 1.2))


def _schedule(rng: np.random.Generator, seconds: float) -> list[tuple[int, float, float]]:
    """Events of a clip as ``(kind, start_s, duration_s)``, cut to end by ``seconds``.

    One to three layers each hold a sequence of events with pauses in between; a
    per-clip mixture of kind probabilities makes some clips mostly speech, some mostly
    music, percussion or noise, which spreads the high-band statistics across clips.
    """
    kind_weights = rng.dirichlet(np.full(len(_DURATIONS), 0.6))
    n_layers = rng.choice([1, 2, 3], p=[0.35, 0.45, 0.2])
    events = []
    for layer in range(n_layers):
        # The first layer starts within 0.3 s so that clips do not open with long silence.
        t = rng.uniform(0.0, 0.3 if layer == 0 else seconds / 2)
        while t < seconds - 0.02:
            kind = int(rng.choice(len(_DURATIONS), p=kind_weights))
            duration = rng.uniform(*_DURATIONS[kind])
            events.append((kind, t, min(duration, seconds - t)))
            # Later layers pause longer: they add overlap, not a wall of sound.
            t += duration + rng.exponential(0.3 * (1 + layer))
    return events


def _gap_gain(rng: np.random.Generator, n: int, sample_rate: int) -> np.ndarray:
    """Gain ``(n,)`` that drops to -40..-60 dB in up to two short near-silent gaps."""
    gain = np.ones(n, dtype=np.float32)
    for _ in range(rng.choice([0, 1, 2], p=[0.5, 0.3, 0.2])):
        length = round(rng.uniform(0.08, 0.4) * sample_rate)
        begin = round(rng.uniform(0.0, 1.0) * max(n - length, 0))
        floor = 10 ** (rng.uniform(-60.0, -40.0) / 20)
        dip = 1 - (1 - floor) * _ar_envelope(min(length, n - begin), sample_rate, 0.01, 0.01)
        gain[begin : begin + dip.size] *= dip  # overlapping gaps must not cut each other off
    return gain


# --- shared building blocks ------------------------------------------------------------


def _frame_count(seconds: float, sample_rate: int) -> tuple[int, int]:
    """``(n, frames)``: samples of a ``seconds``-long event and control frames covering them."""
    n = max(round(seconds * sample_rate), 1)
    return n, -(-n // _HOP)


def _frame_times(frames: int, sample_rate: int) -> np.ndarray:
    """Times (seconds) of the ``frames + 1`` control points, ``_HOP`` samples apart."""
    return np.arange(frames + 1) * (_HOP / sample_rate)


def _upsample(control: np.ndarray) -> np.ndarray:
    """Linear interpolation of ``(..., F + 1)`` control values to ``(..., F * _HOP)`` samples."""
    ramp = np.arange(_HOP, dtype=np.float32) / _HOP
    start = control[..., :-1, None].astype(np.float32)
    step = np.diff(control, axis=-1)[..., None].astype(np.float32)
    return (start + step * ramp).reshape(*control.shape[:-1], -1)


def _sin_cycles(cycles: np.ndarray) -> np.ndarray:
    """``sin(2 pi cycles)`` as float32.

    The phase is wrapped in float64 first: numpy's float32 ``sin`` is ~25x faster than the
    float64 one, but only accurate for small arguments.
    """
    wrapped = (cycles - np.floor(cycles)).astype(np.float32)
    wrapped *= np.float32(2 * np.pi)
    return np.sin(wrapped, out=wrapped)


def _nyquist_taper(freqs: np.ndarray, sample_rate: int) -> np.ndarray:
    """Gain in [0, 1] per frequency (Hz): 1 below ``0.45 * rate``, 0 above ``0.48 * rate``."""
    start, stop = _TAPER_START * sample_rate, _TAPER_STOP * sample_rate
    return np.clip((stop - freqs) / (stop - start), 0.0, 1.0)


def _smoothstep(x: np.ndarray) -> np.ndarray:
    """Smooth 0 -> 1 ramp of ``x`` clipped to [0, 1] (polynomial, so exactly reproducible)."""
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def _ar_envelope(n: int, sample_rate: int, attack: float, release: float) -> np.ndarray:
    """Envelope ``(n,)`` float32 rising over ``attack`` s and falling over the last ``release`` s."""
    i = np.arange(n, dtype=np.float32)
    rise = i / max(attack * sample_rate, 1.0)
    fall = (n - 1 - i) / max(release * sample_rate, 1.0)
    return _smoothstep(np.minimum(rise, fall)).astype(np.float32)


def _fade_out(event: np.ndarray, sample_rate: int, seconds: float = 0.005) -> None:
    """Fade the last ``seconds`` of ``event`` in place so that cut-off sounds do not click."""
    m = min(event.size, max(round(seconds * sample_rate), 1))
    event[-m:] *= np.linspace(1.0, 0.0, m, dtype=np.float32)


def _bandpass(freqs: np.ndarray, low: float, high: float, order: float) -> np.ndarray:
    """Butterworth-like magnitude: rolls off by ``6 * order`` dB/octave outside [low, high]."""
    f = np.maximum(freqs, 1e-3)
    return 1 / np.sqrt((1 + (low / f) ** (2 * order)) * (1 + (f / high) ** (2 * order)))


def _shaped_noise(
    rng: np.random.Generator, n: int, sample_rate: int, magnitude: Callable[[np.ndarray], np.ndarray]
) -> np.ndarray:
    """Gaussian noise ``(n,)`` float32 with unit RMS and the spectral ``magnitude(freqs_hz)``.

    The spectrum is drawn directly in the rfft domain, so the noise is band-limited below
    the anti-alias taper by construction; the FFT length is the next power of two, the
    fast case for any ``n``.
    """
    size = 1 << max(n - 1, 1).bit_length()
    freqs = np.fft.rfftfreq(size, 1 / sample_rate)
    gain = magnitude(freqs) * _nyquist_taper(freqs, sample_rate)
    gain[0] = 0.0
    spectrum = rng.standard_normal((freqs.size, 2)).view(np.complex128)[:, 0] * gain
    noise = np.fft.irfft(spectrum, size)[:n].astype(np.float32)
    return noise / max(float(np.sqrt(np.mean(noise**2))), 1e-12)


def _band_limit(x: np.ndarray, sample_rate: int) -> np.ndarray:
    """``x`` ``(n,)`` float32 with the anti-alias taper applied in the rfft domain.

    For sounds whose envelopes are too sharp for the taper of their sources to hold:
    a sub-millisecond attack spreads a noise band by kilohertz.
    """
    # Zero padding keeps the filter's ringing from wrapping around onto the sound.
    size = 1 << (x.size + 256 - 1).bit_length()
    spectrum = np.fft.rfft(x, size)
    spectrum *= _nyquist_taper(np.fft.rfftfreq(size, 1 / sample_rate), sample_rate)
    return np.fft.irfft(spectrum, size)[: x.size].astype(np.float32)


def _partial_bank(
    f0: np.ndarray,
    amps: np.ndarray,
    sample_rate: int,
    n: int,
    ratios: np.ndarray | None = None,
    phases: np.ndarray | None = None,
) -> np.ndarray:
    """Additive synthesis of partials that share a pitch contour.

    Partial ``k`` has frequency ``ratios[k] * f0(t)`` and amplitude ``amps[k](t)``; partials
    fade out before reaching ``0.48 * sample_rate`` (see :func:`_nyquist_taper`).

    Args:
        f0: control-rate fundamental ``(F + 1,)`` Hz, one value every ``_HOP`` samples.
        amps: ``(K, F + 1)`` control-rate amplitudes, linearly interpolated in between.
        n: output length, at most ``F * _HOP``.
        ratios: ``(K,)`` partial frequency over fundamental; ``None`` for the harmonics
            ``1..K`` in sine phase (the fast path: signs of ``amps`` set polarities).
        phases: ``(K,)`` start phases in cycles, with ``ratios``.

    Returns:
        float32 array ``(n,)``.
    """
    frames = f0.size - 1
    harmonic = ratios is None
    if harmonic:
        ratios = np.arange(1.0, amps.shape[0] + 1)
    # The instantaneous frequency between control points lies between theirs, so the
    # taper at the control points bounds it everywhere.
    amps = amps * _nyquist_taper(ratios[:, None] * f0, sample_rate)
    loudest = np.abs(amps).max(axis=1)
    audible = loudest > _NEGLIGIBLE * max(float(loudest.max()), 1e-30)
    # float64 phase: float32 would lose the fraction of a cycle after a few hundred cycles.
    cycles = np.cumsum(_upsample(f0), dtype=np.float64) / sample_rate
    # Samples laid out as (position in frame, frame): the per-frame amplitude rows then
    # broadcast along the long axis, which numpy does faster than along 64-sample rows.
    cycles = np.ascontiguousarray(cycles.reshape(frames, _HOP).T)
    if harmonic:
        waves = _harmonic_waves(cycles, int(np.flatnonzero(audible).max(initial=-1)) + 1)
    else:
        waves = ((k, _sin_cycles(cycles * ratios[k] + phases[k])) for k in np.flatnonzero(audible))
    start = amps[:, :-1].astype(np.float32)
    step = np.diff(amps, axis=1).astype(np.float32)
    ramp = (np.arange(_HOP, dtype=np.float32) / _HOP)[:, None]
    out = np.zeros((_HOP, frames), dtype=np.float32)
    amp = np.empty_like(out)
    for k, wave in waves:
        if audible[k]:
            np.multiply(ramp, step[k], out=amp)
            amp += start[k]
            amp *= wave
            out += amp
    return out.T.reshape(-1)[:n]


# The float32 sine recurrence below drifts with every step (by ~1e-3 of a partial's
# amplitude after 260 steps); restarting it from exact values every 64 harmonics keeps
# every partial within ~1e-4 (-80 dB) of exact.
_RESTART = 64


def _harmonic_waves(cycles: np.ndarray, count: int) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(k, sin(2 pi (k + 1) cycles))`` for ``k < count``, float32 shaped like ``cycles``.

    Uses ``sin((k + 1) x) = 2 cos(x) sin(k x) - sin((k - 1) x)``: two float32 operations
    per sample and harmonic instead of a phase wrap and a ``sin``. The yielded array is
    overwritten by the next step.
    """
    two_cos = 2 * _sin_cycles(cycles + 0.25)
    previous = current = spare = np.empty_like(two_cos)
    for k in range(count):
        if k % _RESTART == 0:
            previous, current = _sin_cycles(k * cycles), _sin_cycles((k + 1) * cycles)
        else:
            np.multiply(two_cos, current, out=spare)
            spare -= previous
            previous, current, spare = current, spare, previous
        yield k, current


def _contour(rng: np.random.Generator, times: np.ndarray, seconds: float, spacing: float, spread: float) -> np.ndarray:
    """Smooth random curve at ``times`` (within ``seconds`` + one control step).

    Normal values (std ``spread``) every ``spacing`` s, linearly interpolated; the number
    of draws depends on ``seconds`` only, not on the sample rate.
    """
    knots = np.arange(0.0, seconds + 2 * spacing, spacing)
    return np.interp(times, knots, rng.normal(0.0, spread, knots.size))


# --- kind 1: harmonic tones --------------------------------------------------------------

# Enough partials to take the lowest note (90 Hz) up to the anti-alias taper.
_MAX_PARTIALS = 240


def _tone_phrase(params: np.random.Generator, noise: np.random.Generator, sample_rate: int, seconds: float) -> np.ndarray:
    """A phrase of notes of one random instrument, ``(round(seconds * rate),)`` float32.

    The instrument fixes the spectral slope (``k ** -alpha``), odd-harmonic emphasis, a
    random smooth body resonance, stiffness (inharmonicity), vibrato and whether notes
    are plucked (exponential decay, faster for higher partials) or sustained.
    """
    n, _ = _frame_count(seconds, sample_rate)
    instrument = {
        "alpha": params.uniform(0.5, 1.8),
        "even_gain": params.uniform(0.05, 0.4) if params.random() < 0.3 else 1.0,
        "stiffness": 10 ** params.uniform(-5.0, -3.5) if params.random() < 0.3 else 0.0,
        "plucked": params.random() < 0.5,
        "decay_time": params.uniform(0.3, 2.0),
        "decay_spread": params.uniform(0.02, 0.15),
        "attack": params.uniform(0.005, 0.015),
        "vibrato_depth": params.uniform(0.002, 0.01) if params.random() < 0.6 else 0.0,
        "vibrato_rate": params.uniform(4.5, 7.0),
        # Body resonance: random dB gains at log-spaced frequencies.
        "body_db": params.normal(0.0, 4.0, 8),
    }
    if not instrument["plucked"]:
        instrument["attack"] = params.uniform(0.02, 0.15)
    out = np.zeros(n, dtype=np.float32)
    pitch = np.log2(params.uniform(100.0, 1200.0))
    t = 0.0
    while t < seconds - 0.05:
        slot = params.uniform(0.12, 0.9)
        length = min(slot * params.uniform(0.6, 1.1), seconds - t)
        velocity = params.uniform(0.6, 1.0)
        step = params.integers(-7, 8) / 12
        if not np.log2(90.0) <= pitch + step <= np.log2(1500.0):
            step = -step
        pitch += step
        note = _note(instrument, 2.0**pitch, length, noise, sample_rate) * velocity
        begin = round(t * sample_rate)
        out[begin : begin + note.size] += note[: n - begin]
        t += slot
    return out


def _note(instrument: dict, f0: float, seconds: float, noise: np.random.Generator, sample_rate: int) -> np.ndarray:
    """One note ``(round(seconds * rate),)`` float32 of ``instrument`` at ``f0`` Hz."""
    n, frames = _frame_count(seconds, sample_rate)
    times = _frame_times(frames, sample_rate)
    k = np.arange(1, _MAX_PARTIALS + 1, dtype=np.float64)
    ratios = k * np.sqrt(1 + instrument["stiffness"] * k**2)

    vibrato_onset = _smoothstep((times - 0.15) / 0.3)
    vibrato = np.sin(2 * np.pi * instrument["vibrato_rate"] * times + noise.uniform(0, 2 * np.pi))
    f0_track = f0 * (1 + instrument["vibrato_depth"] * vibrato_onset * vibrato)

    spectrum = k ** -instrument["alpha"] * np.where(k % 2 == 0, instrument["even_gain"], 1.0)
    body_freqs = np.geomspace(100.0, 20000.0, instrument["body_db"].size)
    body = 10 ** (np.interp(np.log(ratios * f0), np.log(body_freqs), instrument["body_db"]) / 20)
    decay_time = instrument["decay_time"] * (1.0 if instrument["plucked"] else 4.0)
    decay_rates = (1 + instrument["decay_spread"] * (k - 1)) / decay_time
    envelope = _smoothstep(times / instrument["attack"]) * _smoothstep((seconds - times) / 0.03)
    amps = (spectrum * body)[:, None] * np.exp(-decay_rates[:, None] * times) * envelope
    if instrument["stiffness"] == 0:
        # Random polarities keep harmonics from all peaking together, at no cost.
        polarity = noise.choice([-1.0, 1.0], k.size)
        return _partial_bank(f0_track, amps * polarity[:, None], sample_rate, n)
    phases = noise.uniform(0.0, 1.0, k.size)
    return _partial_bank(f0_track, amps, sample_rate, n, ratios, phases)


# --- kind 2: speech-like utterances ---------------------------------------------------

# Vowel formant ranges (Hz) for an adult male tract; a speaker scales them all.
_FORMANT_RANGES = ((270, 850), (850, 2300), (2200, 3000), (3200, 3900), (4200, 5000))
_FORMANT_BANDWIDTHS = (70, 100, 150, 200, 250)
_FORMANT_GAINS = (1.0, 0.6, 0.35, 0.25, 0.2)

# Fricatives: ranges of the low band edge (Hz), the high band edge (Hz) and the peak
# level relative to the voicing's peak.
_FRICATIVES = (
    ((3500, 6500), (11000, 20000), (0.15, 0.5)),  # "s"
    ((1800, 3200), (5500, 9000), (0.15, 0.5)),  # "sh"
    ((900, 2000), (12000, 20000), (0.05, 0.25)),  # "f"
)


def _speech_utterance(params: np.random.Generator, noise: np.random.Generator, sample_rate: int, seconds: float) -> np.ndarray:
    """A speech-like utterance ``(round(seconds * rate),)`` float32.

    Syllables of 0.12-0.35 s each get a vowel (3-5 formant targets that the formant
    tracks glide between), a voiced nucleus and, sometimes, a fricative onset or a
    pause. Every glottal harmonic below the anti-alias taper is synthesised with the
    amplitude ``k ** -tilt * formant_envelope(k * f0(t))``.
    """
    n, frames = _frame_count(seconds, sample_rate)
    times = _frame_times(frames, sample_rate)
    f0_base = np.exp(params.uniform(np.log(80.0), np.log(300.0)))
    tract = params.uniform(0.88, 1.25)
    n_formants = int(params.integers(3, 6))
    tilt = params.uniform(0.6, 1.2)
    breath = params.uniform(0.003, 0.03)  # flat floor of the envelope, i.e. high-band presence
    bandwidths = np.array(_FORMANT_BANDWIDTHS[:n_formants]) * params.uniform(0.8, 1.6)
    gains = np.array(_FORMANT_GAINS[:n_formants]) * params.uniform(0.6, 1.4, n_formants)

    voicing = np.zeros(frames + 1)
    centres, vowels, fricatives = [], [], []
    t = 0.0
    while t < seconds:
        length = params.uniform(0.12, 0.35)
        vowel = np.sort([params.uniform(*r) for r in _FORMANT_RANGES])[:n_formants] * tract
        onset = params.uniform(0.25, 0.45) * length if params.random() < 0.35 else 0.0
        level = params.uniform(0.5, 1.0) if params.random() > 0.15 else 0.0
        span = (times - (t + onset)) / 0.03, (t + length - times) / 0.05
        voicing = np.maximum(voicing, level * _smoothstep(np.minimum(*span)))
        if onset:
            low, high, hiss_level = (params.uniform(*r) for r in _FRICATIVES[params.integers(len(_FRICATIVES))])
            fricatives.append((t, onset + 0.02, low, high, hiss_level))
        centres.append(t + onset + (length - onset) / 2)
        vowels.append(vowel)
        t += length

    declination = np.linspace(1.0, -1.0, times.size) * params.uniform(0.0, 2.0)
    accents = _contour(params, times, seconds, 0.25, 1.5)
    question = (4.0 if params.random() < 0.25 else 0.0) * _smoothstep((times - (seconds - 0.3)) / 0.3)
    # The floor bounds the harmonic count (and the time) at 0.48 * rate / 75 Hz.
    f0 = np.clip(f0_base * 2 ** ((declination + accents + question) / 12), 75.0, 450.0)
    formants = np.stack([np.interp(times, centres, v) for v in np.array(vowels).T])

    # float32: this (harmonics x frames) grid is the costliest part after the synthesis.
    k = np.arange(1, int(_TAPER_STOP * sample_rate / f0.min()) + 1, dtype=np.float32)
    freqs = k[:, None] * f0.astype(np.float32)
    envelope = np.full(freqs.shape, breath, dtype=np.float32)
    offset = np.empty_like(freqs)
    for formant, bandwidth, gain in zip(formants.astype(np.float32), bandwidths, gains):
        np.subtract(freqs, formant, out=offset)
        offset *= np.float32(2 / bandwidth)
        offset *= offset
        offset += 1
        envelope += np.float32(gain) / np.sqrt(offset, out=offset)  # Lorentzian magnitude
    amps = (k ** np.float32(-tilt))[:, None] * envelope * voicing.astype(np.float32)
    out = _partial_bank(f0, amps, sample_rate, n)
    out /= max(float(np.abs(out).max()), 1e-12)

    for start, length, low, high, level in fricatives:
        hiss = _fricative(noise, sample_rate, length, low, high, level)
        begin = round(start * sample_rate)
        out[begin : begin + hiss.size] += hiss[: n - begin]
    return out


def _fricative(
    noise: np.random.Generator, sample_rate: int, seconds: float, low: float, high: float, level: float
) -> np.ndarray:
    """Noise band-passed to [``low``, ``high``] Hz with attack and decay, ``(round(seconds * rate),)`` float32.

    ``level`` is roughly the peak: unit-RMS Gaussian noise peaks near 3.
    """
    n, _ = _frame_count(seconds, sample_rate)
    hiss = _shaped_noise(noise, n, sample_rate, lambda f: _bandpass(f, low, high, 2.0))
    return hiss * _ar_envelope(n, sample_rate, 0.3 * seconds, 0.4 * seconds) * np.float32(level / 3)


# --- kind 3: percussion ----------------------------------------------------------------


@dataclass
class _Drum:
    """A percussion instrument: a decaying noise band plus damped sinusoidal modes."""

    noise_band: tuple[float, float] = (20.0, 20000.0)  # Hz
    noise_decay: float = 0.05  # s, exponential time constant
    noise_level: float = 1.0
    modes: np.ndarray = field(default_factory=lambda: np.zeros(0))  # Hz, at the end of the pitch drop
    mode_decays: np.ndarray = field(default_factory=lambda: np.zeros(0))  # s
    mode_levels: np.ndarray = field(default_factory=lambda: np.zeros(0))
    drop: float = 1.0  # the modes start at drop * modes ...
    drop_time: float = 0.03  # ... and fall with this time constant (s)
    attack: float = 0.0005  # s

    def ring_time(self) -> float:
        """Seconds until the slowest component is down by 60 dB."""
        return 7 * max(self.noise_decay, self.mode_decays.max(initial=0.0))


def _random_drum(rng: np.random.Generator) -> _Drum:
    """A kick, snare, hi-hat, click, tom or metal (cowbell/bell-like) with random tuning."""
    u = rng.uniform
    kind = rng.choice(["kick", "snare", "hat", "click", "tom", "metal"])
    attack = u(0.0002, 0.001)
    if kind == "kick":
        return _Drum(
            (20.0, u(2000, 6000)), u(0.002, 0.006), u(0.1, 0.4),
            np.array([u(45, 70)]), np.array([u(0.1, 0.4)]), np.array([1.0]), u(2.0, 4.0), u(0.02, 0.06), attack,
        )  # fmt: skip
    if kind == "snare":
        return _Drum(
            (u(800, 2000), u(10000, 18000)), u(0.05, 0.2), 1.0,
            u(150, 300) * np.array([1.0, u(1.4, 1.8)]), u(0.03, 0.1, 2), u(0.3, 1.0, 2), u(1.0, 1.3), 0.03, attack,
        )  # fmt: skip
    if kind == "hat":
        count = int(rng.integers(3, 7))
        return _Drum(
            (u(5000, 9000), 30000.0), u(0.01, 0.3), 1.0,
            u(3000, 16000, count), u(0.01, 0.3, count), u(0.05, 0.3, count), attack=attack,
        )  # fmt: skip
    if kind == "click":
        return _Drum(noise_decay=u(0.0003, 0.002), attack=attack)
    if kind == "tom":
        return _Drum(
            (u(200, 500), u(3000, 6000)), u(0.01, 0.05), u(0.1, 0.5),
            u(80, 300) * np.array([1.0, u(1.5, 2.3), u(2.5, 3.5)]), u(0.05, 0.3, 3),
            np.array([1.0, u(0.2, 0.6), u(0.1, 0.3)]), u(1.05, 1.5), 0.03, attack,
        )  # fmt: skip
    count = int(rng.integers(3, 7))
    return _Drum(
        (u(1000, 4000), 20000.0), u(0.005, 0.03), u(0.05, 0.3),
        u(500, 8000, count), u(0.1, 0.6, count), u(0.2, 1.0, count), attack=attack,
    )  # fmt: skip


def _percussion_pattern(params: np.random.Generator, noise: np.random.Generator, sample_rate: int, seconds: float) -> np.ndarray:
    """Repeated hits of one random drum, ``(round(seconds * rate),)`` float32."""
    n, _ = _frame_count(seconds, sample_rate)
    drum = _random_drum(params)
    interval = params.uniform(0.1, 0.5)
    out = np.zeros(n, dtype=np.float32)
    # Room for the band limiter's ringing before the first hit.
    t = 0.005
    while t < seconds:
        velocity = params.uniform(0.4, 1.0)
        if params.random() < 0.85:
            hit = _hit(drum, min(drum.ring_time(), seconds - t), noise, sample_rate) * velocity
            begin = round(t * sample_rate)
            out[begin : begin + hit.size] += hit[: n - begin]
        t += interval * params.uniform(0.9, 1.1)
    return _band_limit(out, sample_rate)


def _hit(drum: _Drum, seconds: float, noise: np.random.Generator, sample_rate: int) -> np.ndarray:
    """One hit of ``drum``, ``(round(seconds * rate),)`` float32: decaying noise plus damped modes."""
    n, _ = _frame_count(seconds, sample_rate)
    t = np.arange(n) / sample_rate
    t32 = t.astype(np.float32)
    hiss = _shaped_noise(noise, n, sample_rate, lambda f: _bandpass(f, *drum.noise_band, 2.0))
    out = hiss * np.exp(-t32 / np.float32(drum.noise_decay)) * np.float32(drum.noise_level / 3)
    # Phase of a mode whose frequency falls from drop * f to f: f * (t + glide).
    glide = (drum.drop - 1) * drum.drop_time * (1 - np.exp(-t32 / np.float32(drum.drop_time)))
    phases = noise.uniform(0.0, 1.0, drum.modes.size)
    taper = _nyquist_taper(drum.modes * drum.drop, sample_rate)
    for freq, decay, level, phase, gain in zip(drum.modes, drum.mode_decays, drum.mode_levels, phases, taper):
        if gain > 0:
            wave = _sin_cycles(freq * (t + glide) + phase)
            out += wave * np.exp(-t32 / np.float32(decay)) * np.float32(level * gain)
    # A short attack rather than a step, whose spectrum would be flat up to Nyquist.
    return out * _smoothstep(t32 / np.float32(drum.attack))


# --- kind 4: noise bursts ----------------------------------------------------------------


def _noise_burst(params: np.random.Generator, noise: np.random.Generator, sample_rate: int, seconds: float) -> np.ndarray:
    """Coloured noise with an envelope, ``(round(seconds * rate),)`` float32.

    Power falls as ``f ** -colour`` (0 white, 1 pink, 2 brown), optionally band-limited;
    some bursts get a slow random amplitude modulation (wind-like).
    """
    n, frames = _frame_count(seconds, sample_rate)
    colour = params.uniform(0.0, 2.2)
    low = 10 ** params.uniform(1.3, 3.3) if params.random() < 0.5 else 20.0
    high = 10 ** params.uniform(3.3, 4.5) if params.random() < 0.5 else 1e6

    def magnitude(f: np.ndarray) -> np.ndarray:
        return (np.maximum(f, 20.0) / 1000) ** (-colour / 2) * _bandpass(f, low, high, 2.0)

    burst = _shaped_noise(noise, n, sample_rate, magnitude)
    attack = max(params.uniform(0.003, 0.5) * seconds, 0.002)
    burst *= _ar_envelope(n, sample_rate, attack, params.uniform(0.05, 0.5) * seconds)
    if params.random() < 0.4:
        depth = params.uniform(0.3, 0.9)
        wobble = _contour(params, _frame_times(frames, sample_rate), seconds, params.uniform(0.03, 0.2), 1.0)
        burst *= _upsample(1 - depth * _smoothstep(0.5 + wobble / 2))[:n]
    return burst


_SOUND_KINDS = (_tone_phrase, _speech_utterance, _percussion_pattern, _noise_burst)
