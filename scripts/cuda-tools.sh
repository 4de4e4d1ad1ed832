# Sourced by the static SASS checks: finds nvcc and nvdisasm (the PyPI wheel
# nvidia-cuda-nvdisasm, which scripts/install-deps.sh puts in
# ${KVC_CUDA_TOOLS:-$HOME/.cache/kvc-cuda-tools}), or reports the check skipped and exits;
# then makes $work, a directory removed on exit.
nvcc=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
tools=${KVC_CUDA_TOOLS:-$HOME/.cache/kvc-cuda-tools}
nvdisasm=$(command -v nvdisasm || echo "$tools/nvidia/cu13/bin/nvdisasm")
if [[ ! -x $nvcc ]]; then
  echo "SKIPPED: no nvcc"
  exit 0
fi
if [[ ! -x $nvdisasm ]]; then
  echo "SKIPPED: no nvdisasm (scripts/install-deps.sh installs the nvidia-cuda-nvdisasm wheel)"
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
