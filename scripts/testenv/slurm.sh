#!/usr/bin/env bash
# Starts or stops a single-node Slurm 22.05 cluster (slurmctld + slurmd, and with
# --accounting slurmdbd + MariaDB so that sacct works) for the Slurm agent's tests.
#
#   slurm.sh start DIR [--accounting]
#       writes DIR/slurm.conf, starts munged when it is not running, the daemons
#       on free ports on 127.0.0.1, waits until the node is idle, and writes DIR/env
#       (SLURM_CONF=..., one line; the tests add it to the agent's environment). When the
#       daemons cannot start (Slurm not installed, no munge), writes the reason to
#       DIR/missing and succeeds: the tests that need Slurm skip, saying so.
#   slurm.sh stop DIR
#       stops the daemons started in DIR (by their PIDs) and removes DIR.
#
# Memory limits: there are no cgroups to delegate in a test container, so the node uses
# jobacct_gather/linux with OverMemoryKill: a job step over its --mem is killed at the
# next sample (every second) and the job ends OUT_OF_MEMORY.
# SLURM_TEST_CPUS / SLURM_TEST_MEMORY_MB (default 2 / 1000) declare a bigger node than the
# machine (slurmd's config_overrides), so that a benchmark can run many mostly idle jobs at
# once.
# Do not run this under `timeout`: it would signal the daemons' process group.
set -euo pipefail
cmd="${1:?usage: slurm.sh start|stop DIR [--accounting]}"
dir="${2:?usage: slurm.sh start|stop DIR [--accounting]}"
accounting=0
[[ "${3:-}" == "--accounting" ]] && accounting=1

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

kill_daemons() {
  for name in slurmd slurmctld slurmdbd mariadb; do
    [[ -f "$dir/$name.pid" ]] || continue
    pid="$(cat "$dir/$name.pid" 2>/dev/null || true)"
    [[ -n "$pid" ]] || continue
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
    fi
  done
}

stop() {
  kill_daemons
  rm -rf "$dir"
}

missing() {
  kill_daemons
  mkdir -p "$dir"
  echo "$*" >"$dir/missing"
  echo "slurm.sh: $*"
  exit 0
}

wait_for() {  # wait_for SECONDS COMMAND...
  local n=$(( $1 * 10 )); shift
  for _ in $(seq "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  return 1
}

case "$cmd" in
  start)
    stop
    mkdir -p "$dir"/{state,spool,log}
    for b in slurmctld slurmd munged munge unmunge sbatch squeue scontrol scancel; do
      command -v "$b" >/dev/null 2>&1 || [[ -x "/usr/sbin/$b" ]] ||
        missing "Slurm is not installed ($b not found); scripts/install-deps.sh installs slurm-wlm and munge"
    done
    if ((accounting)); then
      for b in slurmdbd mariadbd mariadb-install-db sacct; do
        command -v "$b" >/dev/null 2>&1 || [[ -x "/usr/sbin/$b" ]] ||
          missing "Slurm accounting is not installed ($b not found); scripts/install-deps.sh installs slurmdbd and mariadb-server"
      done
    fi
    export PATH="$PATH:/usr/sbin"
    host="$(hostname -s)"

    # munge: the machine's own munged (its key from the munge package), started when it
    # is not running and left running (other clusters and Slurm clients use it). slurmdbd's
    # clients (sacct) always use the default socket, so a private munged would not do.
    if ! munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
      [[ -f /etc/munge/munge.key ]] || missing "munge has no key (/etc/munge/munge.key); reinstall munge"
      mkdir -p /run/munge && chown munge:munge /run/munge
      runuser -u munge -- /usr/sbin/munged >"$dir/log/munged.out" 2>&1 ||
        missing "munged did not start: $(tail -3 "$dir/log/munged.out")"
      wait_for 10 bash -c 'munge -n </dev/null | unmunge' || missing "munged does not answer"
    fi

    ctld_port="$(free_port)"; slurmd_port="$(free_port)"
    acct_lines="AccountingStorageType=accounting_storage/none"
    if ((accounting)); then
      db_port="$(free_port)"; dbd_port="$(free_port)"
      mariadb-install-db --no-defaults --datadir="$dir/db" --user=root --auth-root-authentication-method=normal \
        >"$dir/log/mariadb-install.log" 2>&1 || missing "mariadb-install-db failed: $(tail -3 "$dir/log/mariadb-install.log")"
      mariadbd --no-defaults --datadir="$dir/db" --user=root --bind-address=127.0.0.1 --port="$db_port" \
        --socket="$dir/mariadb.sock" --pid-file="$dir/mariadb.pid" --skip-grant-tables=0 \
        --innodb-buffer-pool-size=64M --innodb-flush-log-at-trx-commit=0 --log-error="$dir/log/mariadb.log" \
        </dev/null >"$dir/log/mariadb.out" 2>&1 &
      wait_for 60 test -S "$dir/mariadb.sock" || missing "MariaDB did not start: $(tail -3 "$dir/log/mariadb.log")"
      # root over TCP with a password (slurmdbd connects over TCP).
      mariadb --no-defaults -S "$dir/mariadb.sock" -u root -e \
        "CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurm-test'; GRANT ALL ON *.* TO 'slurm'@'127.0.0.1'; FLUSH PRIVILEGES;" \
        || missing "cannot create MariaDB's slurm user"
      cat >"$dir/slurmdbd.conf" <<EOF
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$dbd_port
SlurmUser=root
PidFile=$dir/slurmdbd.pid
LogFile=$dir/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$db_port
StorageUser=slurm
StoragePass=slurm-test
StorageLoc=slurm_acct_db
EOF
      chmod 600 "$dir/slurmdbd.conf"
      acct_lines="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$dbd_port"
    fi
    cat >"$dir/slurm.conf" <<EOF
ClusterName=culverttest
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
$acct_lines
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=task=1
JobAcctGatherParams=OverMemoryKill
JobCompType=jobcomp/filetxt
JobCompLoc=$dir/log/jobcomp.txt
SchedulerParameters=defer_batch=0
ReturnToService=2
MinJobAge=300
KillWait=5
DefMemPerNode=200
SlurmdParameters=config_overrides
NodeName=$host NodeAddr=127.0.0.1 CPUs=${SLURM_TEST_CPUS:-2} RealMemory=${SLURM_TEST_MEMORY_MB:-1000} State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
PartitionName=short Nodes=$host MaxTime=1 State=UP
EOF
    export SLURM_CONF="$dir/slurm.conf"
    echo "SLURM_CONF=$dir/slurm.conf" >"$dir/env"
    if ((accounting)); then
      slurmdbd >"$dir/log/slurmdbd.out" 2>&1 ||
        missing "slurmdbd did not start: $(tail -3 "$dir/log/slurmdbd.out")"
      # slurmdbd reads slurmdbd.conf beside $SLURM_CONF.
      wait_for 30 sacctmgr -i list cluster ||
        missing "slurmdbd does not answer: $(tail -3 "$dir/log/slurmdbd.log" 2>/dev/null)"
      sacctmgr -i add cluster culverttest >/dev/null 2>&1 || true
      echo "SLURM_ACCOUNTING=1" >>"$dir/env"
    fi
    slurmctld >"$dir/log/slurmctld.out" 2>&1 || missing "slurmctld did not start: $(tail -3 "$dir/log/slurmctld.out")"
    slurmd -N "$host" >"$dir/log/slurmd.out" 2>&1 || missing "slurmd did not start: $(tail -3 "$dir/log/slurmd.out")"
    if ! wait_for 60 bash -c 'sinfo -h -o %t | grep -qx idle'; then
      missing "the Slurm node did not become idle: $(sinfo -h -o '%t %E' 2>&1 | head -1); $(tail -3 "$dir/log/slurmctld.log")"
    fi
    echo "slurm on 127.0.0.1:$ctld_port (SLURM_CONF=$dir/slurm.conf, accounting $accounting)"
    ;;
  stop) stop ;;
  *) echo "usage: slurm.sh start|stop DIR [--accounting]" >&2; exit 2 ;;
esac
