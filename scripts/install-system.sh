#!/usr/bin/env bash
# Debian packages Flow's tests, demo and pipelines need. Installs only what is missing, so a second run takes
# well under a second. Needs root (apt-get).
set -euo pipefail

PACKAGES=(
  default-jre-headless maven          # Nextflow runs on the JVM; Maven assembles it from Maven Central
  slurm-wlm munge                     # single-node Slurm cluster for the Slurm backend
  postgresql                          # throwaway PostgreSQL for tests (and the hub's database)
  fastqc bowtie2 bowtie2-examples samtools pigz   # tools used by the demo pipeline; lambda phage example reads
  git procps curl                     # pipeline checkouts; process inspection; health probes
  chromium                            # real-browser test of JupyterLab (driven by Playwright)
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]} == 0)); then
  echo "system packages: all present"
  exit 0
fi
if [[ $(id -u) != 0 ]]; then
  echo "system packages missing: ${missing[*]} — run this script as root (or: sudo apt-get install ${missing[*]})" >&2
  exit 1
fi
echo "system packages: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "system packages: done"
