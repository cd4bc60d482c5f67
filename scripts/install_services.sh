#!/usr/bin/env bash
# The real servers the tests start on 127.0.0.1: PostgreSQL (the Optuna study in a database),
# a one-node Slurm (slurmctld, slurmd, munge) for the Slurm template, and an SSH server with rsync
# for `ray up` of the on-premise cluster config.
# Installed from Debian's packages where missing; the tests start and stop their own instances
# (nothing is started here, and no system service is enabled). Fails loudly, with one line, when
# a package cannot be installed: the tests that need it would fail anyway.
set -euo pipefail
need=()
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need+=(postgresql)
command -v runuser >/dev/null || need+=(util-linux)
command -v slurmctld >/dev/null || [ -x /usr/sbin/slurmctld ] || need+=(slurm-wlm)
command -v munged >/dev/null || [ -x /usr/sbin/munged ] || need+=(munge)
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v ssh-keygen >/dev/null || need+=(openssh-client)
command -v rsync >/dev/null || need+=(rsync)
if [ ${#need[@]} -eq 0 ]; then
    echo "services: PostgreSQL, Slurm, munge, sshd and rsync found"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "error: services: ${need[*]} missing and no apt-get here; install them (the tests start them on 127.0.0.1)" >&2
    exit 1
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
        echo "error: services: ${need[*]} missing, not root and no sudo; run 'apt-get install ${need[*]}' as root" >&2
        exit 1
    fi
fi
echo "services: installing Debian packages ${need[*]}"
$SUDO apt-get update -qq
# policy-rc.d 101: install the server without starting Debian's own cluster as a service.
if [ -d /usr/sbin ] && [ ! -e /usr/sbin/policy-rc.d ] && [ "$(id -u)" = "0" ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
if ! $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"; then
    echo "error: services: apt-get install ${need[*]} failed; install them by hand" >&2
    exit 1
fi
