"""Frame rates and output timing: which picture each output frame shows, and when.

Conventions:

- Times, durations and rates are `fractions.Fraction` (seconds; frames per second), so that no rounding
  accumulates: output frame n of a constant-rate output sits at exactly ``origin + n / rate``, also after
  hours of video. Rounding to the container's time base happens once per frame, in the writer.
- A *key* is a distinct input frame: every input frame, or with duplicate removal the first frame of a run
  of (near-)identical frames. Key j is the latest key during its `Span`, from its own time to the next key's
  time (the end of the video for the last key).
- The model only makes the frame halfway between two others, so the pictures it can make between key j
  and key j + 1 are those at dyadic positions ``j + p / 2**depth``, reached by recursive midpoints. An
  output frame at time t inside span j shows the dyadic position nearest to
  ``f = (t - start) / (end - start)``: ``round(f * 2**depth) / 2**depth`` (halves round up; a position
  that rounds to 1 is key j + 1 itself). The content is therefore never more than ``2**-(depth + 1)``
  of the span away from its exact time; for ``--fps`` (depth 3) that is 1/16 of an input frame interval.
- Across a scene cut, and after the last key, a span does not blend: every output frame in it shows key j.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import NamedTuple

from .errors import UsageError

# Named rates, as ffmpeg spells them (`-r ntsc`).
RATE_NAMES: dict[str, Fraction] = {
    "ntsc": Fraction(30000, 1001),
    "pal": Fraction(25),
    "film": Fraction(24),
    "ntsc-film": Fraction(24000, 1001),
    "qntsc": Fraction(15000, 1001),
    "qpal": Fraction(25, 2),
    "sntsc": Fraction(30000, 1001),
    "spal": Fraction(25),
}
FPS_DEPTH = 3
"""Recursion depth for ``--fps``: positions within 1/16 of an input frame interval of the exact time."""

_RATIONAL = re.compile(r"\s*(\d+)\s*[/:]\s*(\d+)\s*")


def parse_rate(value: str | int | float | Fraction) -> Fraction:
    """A frame rate as an exact fraction.

    Accepts integers (``60``), ratios (``60000/1001``, ``30000:1001``), decimals (``59.94``, ``23.976``,
    ``29.97``, ``23.98``: a decimal with two or more places that is an NTSC rate n*1000/1001 rounded to
    those places is that rate, as players mean it) and
    the names ``ntsc`` (30000/1001), ``pal`` (25), ``film`` (24), ``ntsc-film`` (24000/1001), ``qntsc``,
    ``qpal``, ``sntsc``, ``spal``.

    >>> parse_rate("59.94"), parse_rate("ntsc"), parse_rate("25")
    (Fraction(60000, 1001), Fraction(30000, 1001), Fraction(25, 1))

    Raises:
        UsageError: not a positive rate.
    """
    if isinstance(value, Fraction):
        rate = value
    elif isinstance(value, int):
        rate = Fraction(value)
    elif isinstance(value, float):
        rate = _snap_decimal(Decimal(repr(value)))
    else:
        text = value.strip().lower()
        match = _RATIONAL.fullmatch(text)
        if text in RATE_NAMES:
            rate = RATE_NAMES[text]
        elif match:
            num, den = int(match.group(1)), int(match.group(2))
            if den == 0:
                raise UsageError(f"invalid frame rate {value!r}: division by zero")
            rate = Fraction(num, den)
        else:
            try:
                number = Decimal(text)
            except InvalidOperation:
                names = ", ".join(RATE_NAMES)
                raise UsageError(
                    f"invalid frame rate {value!r}; use a number (60, 59.94), a ratio (60000/1001) or one of {names}"
                ) from None
            if not number.is_finite():
                raise UsageError(f"invalid frame rate {value!r}")
            rate = _snap_decimal(number)
    if rate <= 0:
        raise UsageError(f"invalid frame rate {value!r}: it must be positive")
    return rate


def _snap_decimal(number: Decimal) -> Fraction:
    """A decimal that is an NTSC rate (n*1000/1001) written to its number of places (2 or more) is that
    rate: 59.94, 29.97, 23.976 and 23.98 are what players and editors call 60000/1001, 30000/1001 and
    24000/1001."""
    exact = Fraction(number)
    places = -number.as_tuple().exponent  # type: ignore[operator]
    if exact.denominator == 1 or places < 2:
        return exact
    ntsc = Fraction(round(exact * Fraction(1001, 1000)) * 1000, 1001)
    written = (Decimal(ntsc.numerator) / Decimal(ntsc.denominator)).quantize(Decimal(1).scaleb(-places))
    if ntsc > 0 and written == number:
        return ntsc
    return exact


def format_rate(rate: Fraction | None) -> str | None:
    """``"60000/1001"``, or ``"25"`` for a whole number."""
    if rate is None:
        return None
    return str(rate.numerator) if rate.denominator == 1 else f"{rate.numerator}/{rate.denominator}"


def nearest_dyadic(fraction: Fraction, depth: int) -> Fraction:
    """The multiple of ``2**-depth`` nearest to `fraction` (halves round up).

    >>> nearest_dyadic(Fraction(2, 5), 3), nearest_dyadic(Fraction(1, 16), 3)
    (Fraction(3, 8), Fraction(1, 8))
    """
    scale = 1 << depth
    return Fraction((2 * fraction.numerator * scale + fraction.denominator) // (2 * fraction.denominator), scale)


def grid_length(duration: Fraction, rate: Fraction) -> int:
    """How many frames of a constant-`rate` output cover `duration`: ``ceil(duration * rate)`` (the last
    frame is cut short when the product is not whole, so that the output ends exactly where the input does).
    """
    return max(1, math.ceil(duration * rate))


class Span(NamedTuple):
    """The time during which key `key` is the latest distinct input frame.

    Attributes:
        key: index of the key (distinct frame), from 0.
        start: the key's own time.
        end: the next key's time; for the last key, the end of the video (equal to the last frame's time for
            an image sequence, which holds nothing).
        members: times of the input frames this key stands for (the key's own first; more than one when
            duplicates were merged into it).
        blend: whether frames inside the span are interpolated towards key + 1 (False across a scene cut
            and for the last key).
        final: whether this is the last span.
    """

    key: int
    start: Fraction
    end: Fraction
    members: tuple[Fraction, ...]
    blend: bool
    final: bool


class Slot(NamedTuple):
    """One output frame: its time and duration, and the picture it shows: position ``key + frac``."""

    time: Fraction
    duration: Fraction
    key: int
    frac: Fraction

    @property
    def position(self) -> Fraction:
        return self.key + self.frac


def place(time: Fraction, span: Span, depth: int) -> tuple[int, Fraction]:
    """The (key, dyadic fraction) an output frame at `time` inside `span` shows (see the module docstring)."""
    if not span.blend or span.end <= span.start:
        return span.key, Fraction(0)
    frac = nearest_dyadic((time - span.start) / (span.end - span.start), depth)
    if frac >= 1:
        return span.key + 1, Fraction(0)
    return span.key, frac


def plan_multi(spans: Iterable[Span], multi: int, depth: int) -> Iterator[Slot]:
    """Output frames for an exact multiple of the input rate.

    Every input frame is followed by ``multi - 1`` frames evenly spaced up to the next input frame (the end
    of the video after the last one), so N input frames give ``multi * N`` output frames (``multi * (N - 1)
    + 1`` for an image sequence, whose last span has no length). The times come from the input's own, so
    variable frame rates stay correct; with merged duplicates the times are the same as without.
    """
    for span in spans:
        bounds = (*span.members, span.end)
        for t, nxt in zip(bounds, bounds[1:], strict=False):
            if nxt <= t:  # the last image of a sequence: nothing is held after it
                yield Slot(t, Fraction(0), *place(t, span, depth))
                continue
            step = (nxt - t) / multi
            for i in range(multi):
                ti = t + i * step
                yield Slot(ti, step, *place(ti, span, depth))


def plan_fps(
    spans: Iterable[Span], rate: Fraction, depth: int = FPS_DEPTH, origin: Fraction | None = None
) -> Iterator[Slot]:
    """Output frames at a constant `rate` from the first input frame's time to the end of the video.

    Frame n sits at exactly ``origin + n / rate`` (computed from n, so nothing drifts) and shows the dyadic
    position nearest to that time (`place`); there are ``grid_length(duration, rate)`` of them and the last
    one is cut short so that the output lasts exactly as long as the input.

    `origin` is the first input frame's time (default: the first span's start). A later part of a video
    (a segment, whose spans start after `origin`) gets the frames of the whole video's grid from its first
    span on.
    """
    # Same arithmetic as `place`, on integer numerators and denominators (exact, and fast enough to plan
    # a feature film in a second or two).
    period = 1 / rate
    scale = 1 << depth
    fracs = [Fraction(q, scale) for q in range(scale)]
    n = 0
    t_den = o_num = step = 0
    first = True
    for span in spans:
        if first:
            first = False
            if origin is None:
                origin = span.start
            n = max(0, math.ceil((span.start - origin) * rate))
            # t(n) = origin + n * period = (o_num + n * step) / t_den
            t_den = origin.denominator * period.denominator
            o_num = origin.numerator * period.denominator
            step = period.numerator * origin.denominator
        s_num, s_den = span.start.numerator, span.start.denominator
        e_num, e_den = span.end.numerator, span.end.denominator
        length_num = e_num * s_den - s_num * e_den  # (end - start) * e_den * s_den
        blend = span.blend and length_num > 0
        while True:
            t_num = o_num + n * step
            if t_num * e_den >= e_num * t_den:  # t >= end
                break
            t = Fraction(t_num, t_den)
            duration = min(period, span.end - t) if span.final else period
            if not blend:
                yield Slot(t, duration, span.key, fracs[0])
            else:
                # f = (t - start) / (end - start) = num / den; q = floor(f * scale + 1/2)
                num = (t_num * s_den - s_num * t_den) * e_den
                den = t_den * length_num
                q = (2 * num * scale + den) // (2 * den)
                if q >= scale:
                    yield Slot(t, duration, span.key + 1, fracs[0])
                else:
                    yield Slot(t, duration, span.key, fracs[q])
            n += 1
