"""How a low-rate signal is made from a full-band target: the training data's degradation.

Real low-rate audio was not all made by one resampling filter, and a model trained on one
filter generalises poorly to others (random filters in training are common practice for
this reason). :class:`RandomLowpass` therefore draws, per training crop, a low-pass of a
random family, order and cut-off near the source Nyquist frequency (or a plain
resampler), and a random gain. Validation and test
use one fixed :class:`Resample` (resampy ``kaiser_best`` by default, as published
systems), so that their numbers compare across runs; ``make bench`` also tests with
other fixed :class:`Lowpass` filters.

A degradation maps a target ``(C, T)`` at the target rate to the low-rate signal
``(C, ceil(T * source_rate / target_rate))``, sample-aligned with the target (every
filter here is zero-phase). It may also return a gain it applied, which the pair maker
applies to the target as well.

A model for any input (``source_rate == target_rate``) is trained on signals that stay at the
target rate but lost their top band in every way users' files do: :class:`AnyBand` draws, per
item, a lower rate and back (:class:`LowRate`, what ``audiosr upsample`` does to an 8-32 kHz
file), an IIR low-pass anywhere from 3.5 to 20 kHz, a real codec round trip at the target rate
(:class:`Codec`: MP3, Vorbis, Opus), or nothing at all (a complete band, to which the model
must add nothing).
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np

from audiosr.dsp import best_lag, check_resampler, nyquist, output_length, resample

FilterKind = Literal["butter", "cheby1", "cheby2", "bessel", "ellip"]


class Degradation(ABC):
    """Target ``(C, T)`` at ``target_rate`` -> ``(low (C, T_low), gain)``."""

    @abstractmethod
    def __call__(self, target: np.ndarray, source_rate: int, target_rate: int,
                 rng: np.random.Generator) -> tuple[np.ndarray, float]:
        """The low-rate signal, and the gain applied to it (the target is to be scaled alike)."""

    def describe(self) -> str:
        return type(self).__name__


class Resample(Degradation):
    """A plain resampler of ``audiosr.dsp`` (its own anti-aliasing low-pass, nothing else)."""

    def __init__(self, method: str = "kaiser_best") -> None:
        check_resampler(method)
        self.method = method

    def __call__(self, target, source_rate, target_rate, rng):
        n = output_length(target.shape[-1], target_rate, source_rate)
        return resample(target, target_rate, source_rate, self.method, n), 1.0

    def describe(self) -> str:
        return f"resample ({self.method})"


def _design(kind: FilterKind, order: int, cutoff_hz: float, rate: int, ripple_db: float, stop_db: float) -> np.ndarray:
    """Second-order sections of an IIR low-pass (scipy.signal)."""
    from scipy import signal

    if kind == "butter":
        return signal.butter(order, cutoff_hz, output="sos", fs=rate)
    if kind == "cheby1":
        return signal.cheby1(order, ripple_db, cutoff_hz, output="sos", fs=rate)
    if kind == "cheby2":
        return signal.cheby2(order, stop_db, cutoff_hz, output="sos", fs=rate)
    if kind == "bessel":
        return signal.bessel(order, cutoff_hz, output="sos", fs=rate, norm="mag")
    if kind == "ellip":
        return signal.ellip(order, ripple_db, stop_db, cutoff_hz, output="sos", fs=rate)
    raise ValueError(f"unknown filter kind {kind!r}")


def lowpass(target: np.ndarray, kind: FilterKind, order: int, cutoff_hz: float, rate: int,
            ripple_db: float = 0.5, stop_db: float = 60.0) -> np.ndarray:
    """Zero-phase IIR low-pass of ``(C, T)`` at ``rate`` (forward-backward, so twice the order)."""
    from scipy import signal

    sos = _design(kind, order, cutoff_hz, rate, ripple_db, stop_db)
    padlen = min(target.shape[-1] - 1, 3 * (2 * len(sos) + 1))
    return signal.sosfiltfilt(sos, target, axis=-1, padlen=max(padlen, 0)).astype(np.float32)


class Lowpass(Degradation):
    """One fixed IIR low-pass at ``cutoff x`` the source Nyquist frequency, then ``resampler``.

    Args:
        kind: filter family (scipy.signal): Butterworth, Chebyshev I/II, Bessel, elliptic.
        order: filter order (applied forward and backward: zero-phase).
        cutoff: corner frequency as a fraction of the source Nyquist frequency.
        ripple_db: pass-band ripple (Chebyshev I, elliptic).
        stop_db: stop-band attenuation (Chebyshev II, elliptic).
        resampler: brings the filtered signal to the source rate (its own anti-aliasing
            filter removes what the low-pass leaves above the source Nyquist frequency).
    """

    def __init__(self, kind: FilterKind = "cheby1", order: int = 8, cutoff: float = 0.95, ripple_db: float = 0.5,
                 stop_db: float = 60.0, resampler: str = "soxr_vhq") -> None:
        if not 0 < cutoff <= 1:
            raise ValueError(f"cutoff is a fraction of the source Nyquist frequency in (0, 1], got {cutoff}")
        check_resampler(resampler)
        _design(kind, order, 1000.0, 44100, ripple_db, stop_db)  # validates the parameters now
        self.kind, self.order, self.cutoff = kind, int(order), float(cutoff)
        self.ripple_db, self.stop_db, self.resampler = float(ripple_db), float(stop_db), resampler

    def __call__(self, target, source_rate, target_rate, rng):
        filtered = lowpass(target, self.kind, self.order, self.cutoff * nyquist(source_rate), target_rate,
                           self.ripple_db, self.stop_db)
        return Resample(self.resampler)(filtered, source_rate, target_rate, rng)[0], 1.0

    def describe(self) -> str:
        return f"{self.kind} order {self.order} at {self.cutoff:g} x Nyquist, then {self.resampler}"


class RandomLowpass(Degradation):
    """A random degradation per item: the robust training default.

    With probability ``resampler_probability`` a plain resampler from ``resamplers``;
    otherwise an IIR low-pass of a family from ``kinds``, an order drawn from ``orders``
    (inclusive), a corner drawn from ``cutoffs`` (fractions of the source Nyquist
    frequency), ripple / stop-band drawn from their ranges, followed by a resampler from
    ``resamplers``. A gain drawn uniformly in dB from ``gain_db`` is applied as well.
    """

    def __init__(
        self,
        kinds: Sequence[FilterKind] = ("butter", "cheby1", "cheby2", "bessel", "ellip"),
        orders: tuple[int, int] = (2, 10),
        cutoffs: tuple[float, float] = (0.85, 1.0),
        ripple_db: tuple[float, float] = (0.05, 1.0),
        stop_db: tuple[float, float] = (40.0, 80.0),
        resamplers: Sequence[str] = ("kaiser_best", "kaiser_fast", "soxr_vhq", "soxr_hq"),
        resampler_probability: float = 0.3,
        gain_db: tuple[float, float] = (-12.0, 0.0),
    ) -> None:
        for method in resamplers:
            check_resampler(method)
        if not kinds or not resamplers:
            raise ValueError("kinds and resamplers must not be empty")
        if not (0 < cutoffs[0] <= cutoffs[1] <= 1):
            raise ValueError(f"cutoffs must lie in (0, 1], got {cutoffs}")
        self.kinds, self.orders, self.cutoffs = tuple(kinds), tuple(orders), tuple(cutoffs)
        self.ripple_db, self.stop_db = tuple(ripple_db), tuple(stop_db)
        self.resamplers, self.resampler_probability = tuple(resamplers), float(resampler_probability)
        self.gain_db = tuple(gain_db)

    def draw(self, rng: np.random.Generator) -> Degradation:
        """The degradation used for one item."""
        resampler = str(rng.choice(self.resamplers))
        if rng.random() < self.resampler_probability:
            return Resample(resampler)
        kind = str(rng.choice(self.kinds))
        # Bessel filters above order ~8 lose numerical accuracy in scipy's design.
        high = min(self.orders[1], 8) if kind == "bessel" else self.orders[1]
        order = int(rng.integers(self.orders[0], max(self.orders[0], high) + 1))
        return Lowpass(kind, order, float(rng.uniform(*self.cutoffs)), float(rng.uniform(*self.ripple_db)),
                       float(rng.uniform(*self.stop_db)), resampler)

    def __call__(self, target, source_rate, target_rate, rng):
        gain = float(10 ** (rng.uniform(*self.gain_db) / 20))
        low, _ = self.draw(rng)(target, source_rate, target_rate, rng)
        return low * np.float32(gain), gain

    def describe(self) -> str:
        return (f"random: {', '.join(self.kinds)} (orders {self.orders[0]}-{self.orders[1]}, corner "
                f"{self.cutoffs[0]:g}-{self.cutoffs[1]:g} x Nyquist) or a plain resampler "
                f"(p={self.resampler_probability:g}) of {', '.join(self.resamplers)}; gain {self.gain_db} dB")


# Codecs libsndfile encodes, by the name a config gives: (major format, subtype).
CODECS = {"mp3": ("MP3", "MPEG_LAYER_III"), "vorbis": ("OGG", "VORBIS"), "opus": ("OGG", "OPUS")}
OPUS_RATES = (8000, 12000, 16000, 24000, 48000)


class Codec(Degradation):
    """A real lossy codec round trip at the source rate: resample, encode, decode (libsndfile).

    What users' low-rate files often are: an MP3, Vorbis or Opus file whose encoder also cut or
    smeared the band below the Nyquist frequency. The decoded signal is sample-aligned with the
    input and as long (libsndfile trims the encoders' delay and padding; tested).

    Args:
        codec: ``mp3``, ``vorbis`` or ``opus`` (Opus runs at 8, 12, 16, 24 or 48 kHz: at another source
            rate the signal goes to 48 kHz and back with soxr VHQ).
        kbps: the bitrate asked of the encoder: MP3 at a constant bitrate; Vorbis and Opus at the
            quality that gives about this on noise (their bitrate follows the content).
        resampler: brings the target to the source rate before encoding.
    """

    def __init__(self, codec: str = "mp3", kbps: float = 64.0, resampler: str = "kaiser_best") -> None:
        if codec not in CODECS:
            raise ValueError(f"codec must be one of {', '.join(CODECS)}, got {codec!r}")
        if not 8 <= kbps <= 320:
            raise ValueError(f"kbps must be between 8 and 320, got {kbps}")
        check_resampler(resampler)
        self.codec, self.kbps, self.resampler = codec, float(kbps), resampler

    def __call__(self, target, source_rate, target_rate, rng):
        low, _ = Resample(self.resampler)(target, source_rate, target_rate, rng)
        if self.codec == "opus" and source_rate not in OPUS_RATES:
            # Opus runs at 48 kHz inside anyway (an encoder given 44.1 kHz resamples it too).
            there = resample(low, source_rate, OPUS_RATES[-1], "soxr_vhq")
            decoded = round_trip(there, OPUS_RATES[-1], self.codec, self.kbps)
            return resample(decoded, OPUS_RATES[-1], source_rate, "soxr_vhq", low.shape[-1]), 1.0
        return round_trip(low, source_rate, self.codec, self.kbps), 1.0

    def describe(self) -> str:
        return f"{self.resampler}, then {self.codec} at {self.kbps:g} kbps (encoded and decoded)"


def round_trip(x: np.ndarray, rate: int, codec: str, kbps: float) -> np.ndarray:
    """``(C, T)`` encoded with ``codec`` at about ``kbps`` and decoded: ``(C, T)`` float32."""
    import io

    import soundfile as sf

    fmt, subtype = CODECS[codec]
    level, mode = encoder_setting(codec, rate, x.shape[0], kbps)
    buffer = io.BytesIO()
    try:
        sf.write(buffer, np.ascontiguousarray(np.clip(x, -1, 1).T), rate, format=fmt, subtype=subtype,
                 compression_level=level, bitrate_mode=mode)
    except (sf.LibsndfileError, ValueError) as error:
        raise ValueError(f"{codec} cannot encode {x.shape[0]} channel(s) at {rate} Hz ({error})") from None
    buffer.seek(0)
    decoded, _ = sf.read(buffer, dtype="float32", always_2d=True)
    return aligned(decoded.T, x)


# An encoder that resamples internally (LAME below about 48 kbps) leaves a delay libsndfile does not
# trim: found by cross-correlation within this many samples and taken out.
MAX_CODEC_DELAY = 4096


def aligned(decoded: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``decoded`` ``(C, T')`` shifted to line up with ``reference`` ``(C, T)``, cut or zero-padded to ``T``."""
    n = reference.shape[-1]
    lag, _ = best_lag(decoded.mean(axis=0)[:n], reference.mean(axis=0), MAX_CODEC_DELAY)
    out = np.zeros_like(reference, dtype=np.float32)
    if lag >= 0:
        part = decoded[:, lag: lag + n]
        out[:, : part.shape[-1]] = part
    else:
        part = decoded[:, : n + lag]
        out[:, -lag: -lag + part.shape[-1]] = part
    return out


@functools.lru_cache(maxsize=64)
def encoder_setting(codec: str, rate: int, channels: int, kbps: float) -> tuple[float, str | None]:
    """libsndfile's compression level (and bitrate mode) that gives about ``kbps`` for this codec,
    rate and channel count: found by bisection on 2 s of noise (the level lowers the bitrate)."""
    import io

    import soundfile as sf

    fmt, subtype = CODECS[codec]
    mode = "CONSTANT" if codec == "mp3" else None
    noise = (0.1 * np.random.default_rng(0).standard_normal((2 * rate, channels))).astype(np.float32)

    def measured(level: float) -> float:
        buffer = io.BytesIO()
        sf.write(buffer, noise, rate, format=fmt, subtype=subtype, compression_level=level, bitrate_mode=mode)
        return len(buffer.getvalue()) * 8 / 2 / 1000

    low, high = 0.0, 0.99  # libsndfile refuses 1.0 for some codecs
    try:
        most, least = measured(low), measured(high)
    except (sf.LibsndfileError, ValueError) as error:
        raise ValueError(f"{codec} cannot encode {channels} channel(s) at {rate} Hz ({error})") from None
    if not 0.8 * least <= kbps <= 1.25 * most:
        raise ValueError(f"{codec} at {rate} Hz ({channels} channel(s)) encodes between about {least:.0f} and "
                         f"{most:.0f} kbps, not {kbps:g}")
    for _ in range(12):
        middle = (low + high) / 2
        low, high = (middle, high) if measured(middle) > kbps else (low, middle)
    return (low + high) / 2, mode


class LowRate(Degradation):
    """A file at ``rate`` as ``audiosr upsample`` receives it: made from the original by ``made_by`` (a
    ``resampler``, by default), put on the ``bits`` grid (a 16-bit file), and brought to the source rate
    with ``back`` (soxr VHQ, as the upsampler does). For a model for any input (source rate = target
    rate): "a 16 kHz file" becomes the band-limited signal at the target rate that the model sees.

    Args:
        rate: the file's rate (Hz), below the target rate.
        resampler: made the file from the original (unless ``made_by``).
        back: brings it to the source rate (``audiosr.dsp.RESAMPLERS``).
        bits: PCM word length of the file (8, 16, 24), or ``None`` / 32 for float.
        made_by: another degradation that made the file at ``rate`` (a low-pass, then a resampler).
    """

    def __init__(self, rate: int = 16000, resampler: str = "kaiser_best", back: str = "soxr_vhq",
                 bits: int | None = 16, made_by: Degradation | None = None) -> None:
        from audiosr.data.pairs import check_input_bits

        check_resampler(resampler)
        check_resampler(back)
        if not 1000 <= int(rate):
            raise ValueError(f"rate must be at least 1000 Hz, got {rate}")
        self.rate, self.resampler, self.back = int(rate), resampler, back
        self.bits = check_input_bits(bits)
        self.made_by = made_by or Resample(resampler)

    def __call__(self, target, source_rate, target_rate, rng):
        from audiosr.data.pairs import to_pcm

        if self.rate >= target_rate:
            raise ValueError(f"LowRate: {self.rate} Hz is not below the target rate {target_rate} Hz")
        low = self.made_by(target, self.rate, target_rate, rng)[0]
        if self.bits is not None:
            low = to_pcm(low, self.bits)
        n = output_length(target.shape[-1], target_rate, source_rate)
        return resample(low, self.rate, source_rate, self.back, n), 1.0

    def describe(self) -> str:
        bits = f"{self.bits}-bit" if self.bits else "float"
        return f"a {self.rate / 1000:g} kHz {bits} file ({self.made_by.describe()}), brought back with {self.back}"


class AnyBand(Degradation):
    """Every way a file at the target rate (or below it) lost its top band, one drawn per item:
    the training degradation of a model for any input (``source_rate == target_rate``).

    * ``rate`` (``weights[0]``): a file at a rate drawn from ``rates`` (:class:`LowRate`; a
      resampler from ``resamplers``, half of them after an IIR low-pass just under that rate's
      Nyquist frequency as other tools' filters are, 16-bit half the time);
    * ``lowpass``: an IIR low-pass at the target rate, its corner drawn log-uniformly in
      ``lowpass_hz`` (families and orders as :class:`RandomLowpass`'s steep ones);
    * ``codec``: a real round trip at the target rate, an encoder and bitrate from ``codecs``
      (Opus runs at 48 kHz: the signal goes there and back with soxr VHQ);
    * ``complete``: nothing lost; the model must add nothing.

    A gain drawn in ``gain_db`` is applied to all, as :class:`RandomLowpass` does.
    """

    KINDS = ("rate", "lowpass", "codec", "complete")

    def __init__(
        self,
        weights: Sequence[float] = (0.4, 0.2, 0.25, 0.15),
        rates: Sequence[int] = (8000, 11025, 12000, 16000, 22050, 24000, 32000),
        resamplers: Sequence[str] = ("kaiser_best", "kaiser_fast", "soxr_vhq", "soxr_hq"),
        lowpass_hz: tuple[float, float] = (3500.0, 20000.0),
        kinds: Sequence[FilterKind] = ("butter", "cheby1", "cheby2", "ellip"),
        orders: tuple[int, int] = (6, 10),
        codecs: Sequence[str] = ("mp3:48", "mp3:64", "mp3:96", "mp3:128", "mp3:192", "vorbis:64", "vorbis:96",
                                 "vorbis:128", "opus:32", "opus:64"),
        gain_db: tuple[float, float] = (-12.0, 0.0),
    ) -> None:
        if len(weights) != len(self.KINDS) or min(weights) < 0 or sum(weights) <= 0:
            raise ValueError(f"weights are {len(self.KINDS)} shares ({', '.join(self.KINDS)}), got {list(weights)}")
        for method in resamplers:
            check_resampler(method)
        if not 0 < lowpass_hz[0] <= lowpass_hz[1]:
            raise ValueError(f"lowpass_hz must be (lo, hi) with 0 < lo <= hi, got {lowpass_hz}")
        self.codecs = tuple(_codec_setting(c) for c in codecs)
        self.weights = np.asarray(weights, dtype=np.float64) / float(sum(weights))
        self.rates, self.resamplers = tuple(int(r) for r in rates), tuple(resamplers)
        self.lowpass_hz, self.kinds, self.orders = tuple(lowpass_hz), tuple(kinds), tuple(orders)
        self.gain_db = tuple(gain_db)
        self.steep = RandomLowpass(kinds=self.kinds, orders=self.orders, cutoffs=(0.9, 1.0), resamplers=self.resamplers,
                                   resampler_probability=0.5, gain_db=(0.0, 0.0))

    def draw(self, rng: np.random.Generator, target_rate: int) -> tuple[str, Degradation]:
        """The kind and the degradation used for one item."""
        kind = self.KINDS[int(rng.choice(len(self.KINDS), p=self.weights))]
        if kind == "rate":
            rates = [r for r in self.rates if r < target_rate] or [target_rate // 2]
            rate, made_by = int(rng.choice(rates)), self.steep.draw(rng)
            return kind, LowRate(rate, bits=16 if rng.random() < 0.5 else None, made_by=made_by)
        if kind == "lowpass":
            # At equal rates a Lowpass's resampler does nothing: the filter alone cuts the band.
            lo, hi = np.log(self.lowpass_hz[0]), np.log(min(self.lowpass_hz[1], 0.95 * nyquist(target_rate)))
            corner = float(np.exp(rng.uniform(lo, max(lo, hi))))
            family = str(rng.choice(self.kinds))
            order = int(rng.integers(self.orders[0], self.orders[1] + 1))
            return kind, Lowpass(family, order, corner / nyquist(target_rate), float(rng.uniform(*self.steep.ripple_db)),
                                 float(rng.uniform(*self.steep.stop_db)))
        if kind == "codec":
            codec, kbps = self.codecs[int(rng.integers(len(self.codecs)))]
            return kind, Codec(codec, kbps, "soxr_vhq")
        return kind, Resample("soxr_vhq")

    def __call__(self, target, source_rate, target_rate, rng, prepared=None):
        low, gain, _ = self.degrade(target, source_rate, target_rate, rng, prepared)
        return low, gain

    def degrade(self, target: np.ndarray, source_rate: int, target_rate: int, rng: np.random.Generator,
                prepared: Mapping[str, np.ndarray] | None = None,
                on_device: bool = False) -> tuple[np.ndarray, float, np.ndarray | None]:
        """``(low, gain, plan)``: as ``__call__``, and with ``on_device`` every kind but a codec left undone
        (``low`` is the target times the gain) and written down as a plan for
        :func:`audiosr.data.on_device.apply_plans` (``None`` where ``low`` is done).

        ``prepared``: codec round trips of this very crop made beforehand (shards written with
        ``--codecs``), by setting (``"mp3:64"``); a drawn codec uses one of them instead of encoding.
        The draws are the same either way, so a run's items do not depend on where they are made.
        """
        if source_rate != target_rate:
            raise ValueError(f"AnyBand makes inputs at the target rate: source_rate must equal target_rate, "
                             f"got {source_rate} and {target_rate}")
        gain = float(10 ** (rng.uniform(*self.gain_db) / 20))
        kind, degradation = self.draw(rng, target_rate)
        if kind == "codec" and prepared:
            settings = sorted(prepared)
            low = np.asarray(prepared[settings[int(rng.integers(len(settings)))]], dtype=np.float32)
        elif on_device and kind != "codec":
            from audiosr.data.on_device import plan_of

            return target * np.float32(gain), gain, plan_of(degradation, source_rate, target_rate, gain)
        else:
            low, _ = degradation(target, source_rate, target_rate, rng)
        return low * np.float32(gain), gain, None

    def describe(self) -> str:
        shares = ", ".join(f"{k} {w:.0%}" for k, w in zip(self.KINDS, self.weights))
        return (f"any band ({shares}): rates {', '.join(f'{r / 1000:g}' for r in self.rates)} kHz; IIR corners "
                f"{self.lowpass_hz[0] / 1000:g}-{self.lowpass_hz[1] / 1000:g} kHz; codecs "
                f"{', '.join(f'{c} {k:g}' for c, k in self.codecs)}; gain {self.gain_db} dB")


def _codec_setting(text: str) -> tuple[str, float]:
    """``"mp3:64"`` -> ``("mp3", 64.0)``, checked."""
    codec, _, kbps = str(text).partition(":")
    try:
        Codec(codec, float(kbps))
    except ValueError as error:
        raise ValueError(f"codecs: {text!r} is not CODEC:KBPS ({error})") from None
    return codec, float(kbps)
