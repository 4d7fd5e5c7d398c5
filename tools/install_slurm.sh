#!/usr/bin/env bash
# Debian packages of the local SLURM cluster the tests start (tests/slurm/local_slurm.py): slurmctld, slurmd,
# slurmdbd with MariaDB for sacct, munge. Installs only what is missing; needs root. Quiet: one line when it installs.
set -euo pipefail
need=()
for pair in sbatch:slurm-wlm slurmctld:slurm-wlm slurmd:slurm-wlm slurmdbd:slurmdbd munged:munge \
            mariadbd:mariadb-server-core my_print_defaults:mariadb-client-core; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || [ -x "/usr/sbin/${pair%%:*}" ] || need+=("${pair##*:}")
done
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "install_slurm.sh: cannot install ${need[*]} (needs root and apt-get); the SLURM tests will skip" >&2
  exit 1
fi
mapfile -t pkgs < <(printf '%s\n' "${need[@]}" | sort -u)
echo "installing ${pkgs[*]} for the SLURM tests"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
