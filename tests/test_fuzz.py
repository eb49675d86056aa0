"""Hostile and broken input: a seeded fuzz corpus, damaged streams, extreme frame sizes, unwritable outputs.

Every run must end either with a valid output (2N frames that decode) or with a documented error: a
`VfiError` with a one-line message in the library, exit code 1, 2 or 3 and one `vfi-mini: error:` line in
the CLI. Never another exception type, a traceback, a hang, or a partial or temporary file left in the
output directory. The model is a blend (the pipeline is under test, not the network).
"""

from __future__ import annotations

import faulthandler
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from media import LogCapture, make_video, video_stream_info

import vfi_mini
import vfi_mini.cli.double as cli_double
from vfi_mini.cli import cli
from vfi_mini.errors import InputError, UsageError, VfiError
from vfi_mini.io.images import write_image
from vfi_mini.io.video import MAX_FRAME_PIXELS, EncodeOptions
from vfi_mini.pipeline import double_video

FAST = EncodeOptions(preset="ultrafast")
SEED = 20261124
CASE_SECONDS = 30  # per-case limit; a healthy case takes well under a second
DOCUMENTED_EXIT_CODES = {1, 2, 3}


def blend(window: torch.Tensor) -> torch.Tensor:
    return (window[:, 1] + window[:, 2]) / 2


# --- the corpus ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    name: str
    suffix: str
    data: bytes


def _mutations(name: str, suffix: str, data: bytes, rng: random.Random) -> list[Case]:
    """64 damaged variants of one encoded file: truncations, bit flips, scrambled bytes, zeroed headers and
    blocks, random overwrites, garbage and a second copy appended."""
    n = len(data)
    cases = []

    def add(kind: str, mutated: bytes | bytearray) -> None:
        cases.append(Case(f"{name}-{kind}-{len(cases)}", suffix, bytes(mutated)))

    for frac in (0.0, 0.01, 0.03, 0.06, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99):
        add(f"truncated{frac}", data[: int(n * frac)])
    add("truncated-1", data[:-1])
    for _ in range(14):
        b = bytearray(data)
        for _ in range(rng.choice([1, 2, 8, 32, 128])):
            b[rng.randrange(n)] ^= 1 << rng.randrange(8)
        add("bitflip", b)
    for _ in range(12):
        b = bytearray(data)
        for _ in range(rng.randint(10, 60)):
            b[rng.randrange(n)] = rng.randrange(256)
        add("scrambled", b)
    for size in (8, 32, 128, 512, 4096):
        add(f"zeroed-header{size}", bytes(min(size, n)) + data[size:])
    for _ in range(5):
        start = rng.randrange(n)
        add("zeroed-block", data[:start] + bytes(len(data[start : start + 256])) + data[start + 256 :])
    for _ in range(6):
        start = rng.randrange(n)
        add("random-block", data[:start] + rng.randbytes(len(data[start : start + 64])) + data[start + 64 :])
    for size in (1, 17, 1000, 20000):
        add(f"garbage-appended{size}", data + rng.randbytes(size))
    add("appended-copy", data + data)
    return cases


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> list[Case]:
    """Seeded mutations of four tiny real files (mp4 and mkv, with and without AAC audio; 64x48, 6 frames)
    plus files that are not video at all."""
    work = tmp_path_factory.mktemp("seeds")
    rng = random.Random(SEED)
    cases: list[Case] = []
    for suffix in (".mp4", ".mkv"):
        for audio in (True, False):
            name = f"{suffix[1:]}-{'audio' if audio else 'silent'}"
            seed = make_video(work / f"{name}{suffix}", frames=6, size=(64, 48), audio=audio)
            data = seed.read_bytes()
            cases.append(Case(f"{name}-intact", suffix, data))
            cases.extend(_mutations(name, suffix, data, rng))
    png = work / "image.png"
    write_image(png, (np.random.default_rng(SEED).random((48, 64, 3)) * 255).astype(np.uint8), "png")
    cases += [
        Case("text", ".mp4", b"hello, I am a text file\n" * 40),
        Case("empty", ".mp4", b""),
        Case("random-bytes", ".mp4", rng.randbytes(5000)),
        Case("random-bytes-mkv", ".mkv", rng.randbytes(300)),
        Case("png-renamed", ".mp4", png.read_bytes()),
        Case("mp4-magic-only", ".mp4", b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + bytes(64)),
    ]
    return cases


class _Hang(BaseException):
    """Raised by the per-case alarm (a BaseException, so that nothing in the pipeline swallows it)."""


def _raise_hang(signum, frame):  # noqa: ANN001
    raise _Hang


def _frames_in(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def _check_output_dir(directory: Path, dst: Path, succeeded: bool) -> list[str]:
    names = sorted(p.name for p in directory.iterdir())
    expected = [dst.name] if succeeded else []
    return [] if names == expected else [f"output directory holds {names}, expected {expected}"]


def _run_case(case: Case, root: Path, strict: bool) -> tuple[str, list[str]]:
    """Run one case through `double_video`; return (outcome, problems)."""
    case_dir = root / case.name
    case_dir.mkdir()
    src = case_dir / f"in{case.suffix}"
    src.write_bytes(case.data)
    out_dir = case_dir / "out"
    out_dir.mkdir()
    dst = out_dir / "out.mp4"
    problems: list[str] = []
    signal.signal(signal.SIGALRM, _raise_hang)
    signal.setitimer(signal.ITIMER_REAL, CASE_SECONDS)
    try:
        result = double_video(src, dst, blend, encode=FAST, strict=strict)
        outcome = "ok"
    except VfiError as exc:
        result, outcome = None, type(exc).__name__
        message = str(exc)
        if not message or "\n" in message:
            problems.append(f"{type(exc).__name__} message is not one line: {message!r}")
    except _Hang:
        return "hang", [f"still running after {CASE_SECONDS} s"]
    except BaseException as exc:  # noqa: BLE001 - what the fuzzing is looking for
        return "crash", [f"unexpected {type(exc).__name__}: {exc}"]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    if src.read_bytes() != case.data:
        problems.append("the input was modified")
    problems += _check_output_dir(out_dir, dst, result is not None)
    if result is not None:
        if result.input_frames < 1 or result.output_frames != 2 * result.input_frames:
            problems.append(f"{result.input_frames} frames in, {result.output_frames} out")
        elif dst.exists():
            try:
                decoded = _frames_in(dst)
            except av.FFmpegError as exc:
                problems.append(f"the output does not decode: {exc}")
            else:
                if decoded != result.output_frames:
                    problems.append(f"the output decodes to {decoded} frames, expected {result.output_frames}")
    return outcome, problems


def test_fuzz_double_video(corpus, tmp_path):
    """At least 200 hostile inputs through the library entry point (every fourth also with strict=True)."""
    assert len(corpus) >= 200
    faulthandler.dump_traceback_later(600, exit=True)  # last resort against a hang inside C code
    started = time.monotonic()
    outcomes: dict[str, int] = {}
    failures = []
    try:
        for i, case in enumerate(corpus):
            for strict in (False, True) if i % 4 == 0 else (False,):
                root = tmp_path / ("strict" if strict else "lenient")
                root.mkdir(exist_ok=True)
                outcome, problems = _run_case(case, root, strict)
                outcomes[outcome] = outcomes.get(outcome, 0) + 1
                if problems:
                    failures.append(f"{case.name} (strict={strict}): {outcome}: {'; '.join(problems)}")
    finally:
        faulthandler.cancel_dump_traceback_later()
    assert not failures, "\n".join(failures)
    # The corpus must exercise both outcomes, or it tests nothing.
    assert outcomes.get("ok", 0) >= 20 and outcomes.get("InputError", 0) >= 20, outcomes
    print(f"fuzz: {sum(outcomes.values())} runs in {time.monotonic() - started:.1f} s: {outcomes}")


_DRIVER = """
import sys
import vfi_mini.cli.double as d

class Blend:
    device = None

    def __call__(self, w):
        return (w[:, 1] + w[:, 2]) / 2

d.load_interpolator = lambda *a, **k: Blend()
from vfi_mini.cli import cli
cli.main(args=sys.argv[1:], prog_name="vfi-mini")
"""


def test_fuzz_cli_processes(corpus, tmp_path):
    """A sample of the corpus through the real command line in its own process: documented exit codes, one
    error line, no traceback, nothing left behind."""
    sample = [c for c in corpus if c.name.endswith("-intact")][:1]
    sample += corpus[7::23][:7] + [c for c in corpus if c.name in ("text", "png-renamed")]
    assert len(sample) >= 10
    driver = tmp_path / "driver.py"
    driver.write_text(_DRIVER)
    env = {**os.environ, "PYTHONPATH": str(Path(vfi_mini.__file__).resolve().parents[1])}
    failures = []
    codes = []
    for case in sample:
        case_dir = tmp_path / case.name
        (case_dir / "out").mkdir(parents=True)
        src = case_dir / f"in{case.suffix}"
        src.write_bytes(case.data)
        dst = case_dir / "out" / "out.mp4"
        cmd = [sys.executable, str(driver), "double", str(src), "-o", str(dst), "--preset", "ultrafast", "-q"]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
        except subprocess.TimeoutExpired:
            failures.append(f"{case.name}: no exit after 120 s")
            continue
        codes.append(proc.returncode)
        lines = proc.stderr.strip().splitlines()
        if "Traceback" in proc.stderr or proc.stdout:
            failures.append(f"{case.name}: traceback or stdout: {proc.stderr[-500:]}{proc.stdout[-200:]}")
        elif proc.returncode == 0:
            if lines or not dst.exists() or _frames_in(dst) % 2:
                failures.append(f"{case.name}: exit 0 but stderr {lines} or no valid output")
        elif proc.returncode not in DOCUMENTED_EXIT_CODES:
            failures.append(f"{case.name}: exit code {proc.returncode}: {lines}")
        elif len(lines) != 1 or not lines[0].startswith("vfi-mini: error: "):
            failures.append(f"{case.name}: exit {proc.returncode} with stderr {lines}")
        left = sorted(p.name for p in (case_dir / "out").iterdir())
        if left != (["out.mp4"] if proc.returncode == 0 else []):
            failures.append(f"{case.name}: output directory holds {left}")
    assert not failures, "\n".join(failures)
    assert 0 in codes and 3 in codes, codes  # the sample holds both good and bad inputs


def _remux(src: Path, dst: Path, edit) -> Path:  # noqa: ANN001 - edit(packet, index per stream) -> None
    """Copy every stream of `src` to `dst` packet for packet, letting `edit` change each packet first."""
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        streams = {s.index: out.add_stream_from_template(s) for s in inp.streams}
        counts: dict[int, int] = {}
        for packet in inp.demux():
            if packet.dts is None:
                continue
            index = packet.stream.index
            edit(packet, counts.get(index, 0))
            counts[index] = counts.get(index, 0) + 1
            packet.stream = streams[index]
            out.mux(packet)
    return dst


def _vint(data: bytes, pos: int) -> tuple[int, int]:
    """An EBML variable-size integer at `pos`: (value without its length marker, length in bytes)."""
    length = 9 - data[pos].bit_length()
    value = data[pos] & ((1 << (8 - length)) - 1)
    for byte in data[pos + 1 : pos + length]:
        value = value << 8 | byte
    return value, length


def _simple_blocks(data: bytes, start: int = 0, end: int | None = None) -> list[int]:
    """Offsets of the Matroska SimpleBlock payloads in `data`, descending into Segment and Cluster."""
    end = len(data) if end is None else end
    found, pos = [], start
    while pos < end:
        _, id_len = _vint(data, pos)
        element = data[pos : pos + id_len]
        size, size_len = _vint(data, pos + id_len)
        body = pos + id_len + size_len
        if element in (b"\x18\x53\x80\x67", b"\x1f\x43\xb6\x75"):  # Segment, Cluster
            found += _simple_blocks(data, body, body + size)
        elif element == b"\xa3":
            found.append(body)
        pos = body + size
    return found


def test_audio_packets_with_backward_timestamps_are_dropped(tmp_path):
    """Found by fuzzing: a damaged audio timestamp that goes backwards made the muxer refuse the packet and
    the whole conversion fail. Such packets are now dropped with a warning."""
    src = make_video(tmp_path / "in.mkv", frames=6, audio=True)
    data = bytearray(src.read_bytes())
    audio_blocks = [b for b in _simple_blocks(bytes(data)) if data[b] == 0x82]  # track 2
    block = audio_blocks[5]
    relative = int.from_bytes(data[block + 1 : block + 3], "big", signed=True)
    data[block + 1 : block + 3] = (relative - 60).to_bytes(2, "big", signed=True)  # 60 ms back in time
    damaged = tmp_path / "damaged.mkv"
    damaged.write_bytes(bytes(data))
    with LogCapture() as log:
        result = double_video(damaged, tmp_path / "out.mp4", blend, encode=FAST)
    assert result.output_frames == 12
    assert any("dropped 1 audio/subtitle packet" in m for m in log.messages()), log.messages()


def test_absurd_frame_rate_is_ignored(tmp_path):
    """Found by fuzzing: a damaged header whose only frame lasts for weeks implies a rate of ~1e-5 fps; it
    became the output's rate tag, and in one fuzz case the mp4 muxer refused the packet duration the encoder
    derived from it, losing the output. Rates below one frame a minute are now ignored (25 fps tag; the
    timestamps are kept as they are)."""
    src = make_video(tmp_path / "in.mp4", frames=1, audio=False, time_base=Fraction(1, 100))

    def forever(packet: av.Packet, i: int) -> None:
        packet.duration = 300_000_000  # 35 days in 1/100 s ticks: fits 32 bits here, not in the output

    damaged = _remux(src, tmp_path / "damaged.mp4", forever)
    result = double_video(damaged, tmp_path / "out.mp4", blend, encode=FAST)
    assert result.output_frames == 2 and result.input_rate == 25
    assert _frames_in(tmp_path / "out.mp4") == 2


# --- damaged frames in the middle of a stream -------------------------------------------------------------


def _damage(src: Path, dst: Path, packet_index: int, how: str) -> Path:
    """Copy `src` (video only) with one packet's payload damaged: ``garbage`` overwrites its last three
    quarters, ``cut`` keeps its first third."""
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        stream = inp.streams.video[0]
        ostream = out.add_stream_from_template(stream)
        n = 0
        for packet in inp.demux(stream):
            if packet.dts is None:
                continue
            if n == packet_index:
                payload = bytearray(bytes(packet))
                if how == "garbage":
                    for k in range(len(payload) // 4, len(payload)):
                        payload[k] = (k * 37) & 255
                else:
                    payload = payload[: len(payload) // 3]
                damaged = av.Packet(bytes(payload))
                damaged.pts, damaged.dts, damaged.duration = packet.pts, packet.dts, packet.duration
                damaged.time_base, damaged.is_keyframe = packet.time_base, packet.is_keyframe
                packet = damaged
            packet.stream = ostream
            out.mux(packet)
            n += 1
    return dst


def _decoder_sees(path: Path) -> str:
    """One character per packet as FFmpeg's decoder reports it: ``.`` a good frame, ``C`` a frame it marks
    corrupt, ``E`` a packet it rejects."""
    seen = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for packet in container.demux(stream):
            try:
                seen += ["C" if f.is_corrupt else "." for f in packet.decode()]
            except av.FFmpegError:
                seen.append("E")
    return "".join(seen)


@pytest.mark.parametrize(
    "codec,pix_fmt,how,expect",
    [
        ("mjpeg", "yuvj420p", "garbage", "E"),
        ("libx264", "yuv420p", "cut", "E"),
        ("libx264", "yuv420p", "garbage", "C"),
    ],
)
def test_damaged_frame_is_skipped_with_one_warning_and_timing_kept(tmp_path, codec, pix_fmt, how, expect):
    """The decoder rejects the packet (E: mjpeg, a cut H.264 packet) or decodes it into a frame it marks
    corrupt (C: H.264 with garbage): the frame is left out, one warning counts it, and the neighbours keep
    their timestamps, so the gap is interpolated and the duration is unchanged."""
    clean = make_video(tmp_path / "clean.mkv", frames=8, codec=codec, pix_fmt=pix_fmt, audio=False)
    # Whether garbage makes H.264 frames "corrupt" depends on the bits hit: use the first P-frame for which
    # FFmpeg itself reports exactly one damaged frame of the expected kind.
    for lost in (3, 2, 4, 5):
        src = _damage(clean, tmp_path / "damaged.mkv", lost, how)
        if _decoder_sees(src) == "." * lost + expect + "." * (7 - lost):
            break
    else:
        pytest.skip(f"this FFmpeg reports no single {expect!r} frame for {how} {codec} damage")
    dst = tmp_path / "out.mkv"
    with LogCapture() as log:
        result = double_video(src, dst, blend, encode=FAST)
    warnings = [m for m in log.messages() if "damaged" in m or "frames but" in m]
    assert len(warnings) == 1 and "skipped 1 damaged video frame" in warnings[0], log.messages()
    assert (result.input_frames, result.output_frames, result.frames_skipped) == (7, 14, 1)
    assert result.to_dict()["damaged_frames_skipped"] == 1
    times = video_stream_info(dst)["times"]
    step = Fraction(1, 25)
    assert times[0::2] == [i * step for i in range(8) if i != lost]  # the others keep their timestamps
    assert times[2 * lost - 1] == lost * step  # the frame made for the gap sits where the lost one was
    assert result.output_duration == result.input_duration == 8 * step


def test_strict_fails_on_a_damaged_frame(tmp_path, monkeypatch):
    clean = make_video(tmp_path / "clean.mkv", frames=8, codec="mjpeg", pix_fmt="yuvj420p", audio=False)
    src = _damage(clean, tmp_path / "damaged.mkv", 3, "garbage")
    with pytest.raises(InputError, match=r"damaged video data at 0\.120 s \(.*\); without --strict"):
        double_video(src, tmp_path / "lib.mkv", blend, encode=FAST, strict=True)
    monkeypatch.setattr(cli_double, "load_interpolator", lambda *a, **k: blend)
    dst = tmp_path / "out.mkv"
    result = CliRunner().invoke(cli, ["double", str(src), "-o", str(dst), "--strict"], catch_exceptions=False)
    assert result.exit_code == 3, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vfi-mini: error: ") and "damaged" in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clean.mkv", "damaged.mkv"]  # nothing left
    ok = CliRunner().invoke(cli, ["double", str(clean), "-o", str(dst), "--strict", "-q"], catch_exceptions=False)
    assert ok.exit_code == 0 and video_stream_info(dst)["frames"] == 16  # an intact file passes --strict


def test_strict_fails_on_a_truncated_file(tmp_path):
    """A file cut short: without --strict the frames that are there are converted (with a warning); with it,
    the missing frames are an error."""
    src = make_video(tmp_path / "in.mkv", frames=10, audio=False)
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(src.read_bytes()[: int(src.stat().st_size * 0.7)])
    result = double_video(cut, tmp_path / "out.mp4", blend, encode=FAST)
    assert 1 <= result.input_frames < 10 and result.output_frames == 2 * result.input_frames
    mp4 = make_video(tmp_path / "in.mp4", frames=10, audio=False)
    faststart = tmp_path / "faststart.mp4"
    with av.open(str(mp4)) as inp, av.open(str(faststart), "w", options={"movflags": "+faststart"}) as out:
        stream = out.add_stream_from_template(inp.streams.video[0])
        for packet in inp.demux(inp.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)
    data = faststart.read_bytes()
    cut_mp4 = tmp_path / "cut.mp4"
    cut_mp4.write_bytes(data[: len(data) - 600])  # the index (moov) is at the front: it lists 10 frames
    with pytest.raises(InputError, match="without --strict"):
        double_video(cut_mp4, tmp_path / "strict.mp4", blend, encode=FAST, strict=True)
    assert not (tmp_path / "strict.mp4").exists()


# --- extreme sizes --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "size,frames",
    [((2, 2), 3), ((64, 48), 2), ((16384, 16), 3)],
    ids=["2x2", "two-frames", "16384-wide"],
)
def test_extreme_sizes_keep_the_contract(tmp_path, size, frames):
    src = make_video(tmp_path / "in.mp4", frames=frames, size=size, audio=False)
    dst = tmp_path / "out.mp4"
    result = double_video(src, dst, blend, encode=FAST)
    assert (result.input_frames, result.output_frames) == (frames, 2 * frames)
    assert result.output_duration == result.input_duration == Fraction(frames, 25)
    info = video_stream_info(dst)
    assert (info["width"], info["height"], info["frames"]) == (*size, 2 * frames)


def test_frames_too_large_are_refused_before_decoding(tmp_path):
    """8192x4098 is just over the limit (8192x4096): refused with a one-line error naming the size."""
    width, height = 8192, 4098
    assert width * height > MAX_FRAME_PIXELS
    src = tmp_path / "huge.mkv"
    with av.open(str(src), "w") as out:
        stream = out.add_stream("mjpeg", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuvj420p"
        frame = av.VideoFrame(width, height, "yuvj420p")
        for plane in frame.planes:
            np.frombuffer(plane, np.uint8)[:] = 128
        frame.pts = 0
        out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    with pytest.raises(InputError, match=r"8192x4098 frames \(33\.6 megapixels\) are larger than") as exc:
        double_video(src, tmp_path / "out.mp4", blend, encode=FAST)
    assert "\n" not in str(exc.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["huge.mkv"]


# --- unwritable output --------------------------------------------------------------------------------------


def test_unwritable_output_directory(tmp_path):
    src = make_video(tmp_path / "in.mp4", frames=3, audio=False)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as a user (root) who can write to a read-only directory")
        with pytest.raises(UsageError, match="cannot write to the output directory"):
            double_video(src, locked / "out.mp4", blend, encode=FAST)
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o700)


def test_unwritable_output_directory_in_the_cli(tmp_path, monkeypatch):
    """The same refusal through the CLI (exit 2, one line, before the model loads); the permission check
    is simulated so that it also runs as root."""
    src = make_video(tmp_path / "in.mp4", frames=3, audio=False)
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if Path(p) == locked else real_access(p, mode))
    loaded = []
    monkeypatch.setattr(cli_double, "load_interpolator", lambda *a, **k: loaded.append(1) or blend)
    result = CliRunner().invoke(cli, ["double", str(src), "-o", str(locked / "out.mp4")], catch_exceptions=False)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert lines == [f"vfi-mini: error: cannot write to the output directory {locked} (permission denied)"]
    assert list(locked.iterdir()) == [] and not loaded
