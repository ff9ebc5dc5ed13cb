#!/bin/sh
# Runs inside the container where the culvert package was installed (package_test.sh).
set -eu
echo "--- culvert --version"
culvert --version
test -x /usr/libexec/culvert/culvert-launch
getent passwd culvert
test "$(stat -c %U /var/lib/culvert)" = culvert

echo "--- systemd-analyze verify"
systemd-analyze verify /usr/lib/systemd/system/culvert-server.service /usr/lib/systemd/system/culvert-agent.service

# A unit's setting (the first line KEY=...).
setting() { sed -n "s/^$2=//p" "$1" | head -n 1; }
server_unit=/usr/lib/systemd/system/culvert-server.service
agent_unit=/usr/lib/systemd/system/culvert-agent.service
user="$(setting "$server_unit" User)"
home="$(setting "$server_unit" Environment | sed -n 's/^HOME=//p')"
as_user() { runuser -u "$user" -- env HOME="$home" PATH=/usr/bin:/bin "$@"; }
# Polls a command up to 60 s (a deadline, not a fixed wait).
wait_for() {
  i=0
  until "$@" >/dev/null 2>&1; do
    i=$((i + 1)); [ "$i" -le 600 ] || return 1
    sleep 0.1
  done
}

echo "--- the server, by its unit's ExecStart: $(setting "$server_unit" ExecStart)"
as_user sh -c "exec $(setting "$server_unit" ExecStart)" >/tmp/server.log 2>&1 &
wait_for as_user culvert get agents || { cat /tmp/server.log; exit 1; }
grep -q "127.0.0.1:4200" /tmp/server.log || { cat /tmp/server.log; exit 1; }
ls -l /var/lib/culvert/culvert.db

echo "--- an agent, by its unit's ExecStart and /etc/culvert/agent.env"
mkdir -p /etc/culvert
cp /usr/share/doc/culvert/agent.env.example /etc/culvert/agent.env.example
token="$(as_user culvert auth create-token --name deb-agent --scope runner | sed -n 2p)"
test -n "$token"
{
  echo "CULVERT_API_URL=http://127.0.0.1:4200"
  echo "CULVERT_API_TOKEN=$token"
  echo 'CULVERT_AGENT_ARGS="--type local --name deb-agent --label deb --heartbeat-seconds 1"'
} >/etc/culvert/agent.env
chgrp culvert /etc/culvert/agent.env
chmod 0640 /etc/culvert/agent.env
as_user sh -c "set -a; . /etc/culvert/agent.env; set +a; exec $(setting "$agent_unit" ExecStart)" >/tmp/agent.log 2>&1 &
wait_for sh -c 'runuser -u culvert -- env HOME=/var/lib/culvert culvert get agents | grep -q deb-agent' ||
  { cat /tmp/agent.log; exit 1; }
as_user culvert get agents

echo "--- a flow registered and run by that agent"
cp /pkg/e2e_flow /var/lib/culvert/e2e_flow
chown culvert:culvert /var/lib/culvert/e2e_flow
as_user culvert flow register /var/lib/culvert/e2e_flow --project deb --storage file:///var/lib/culvert/flows --label deb
as_user culvert run e2e --project deb --watch >/tmp/run.log 2>&1 || { cat /tmp/run.log /tmp/agent.log; exit 1; }
grep -q Success /tmp/run.log || { cat /tmp/run.log; exit 1; }
tail -n 3 /tmp/run.log
# The server and the agent end with this container (this shell is its first process).
echo "--- inside: ok"
