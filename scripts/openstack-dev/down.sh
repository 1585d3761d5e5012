#!/bin/bash
# scripts/openstack-dev/down.sh - stop what up.sh started, by the PIDs it recorded.
#   down.sh          stop the services; the data stays, the next up.sh finds the same cloud (~60 s)
#   down.sh --purge  also drop the databases, RabbitMQ's data, the fernet keys, the fake volumes
#                    and the state directory: the next up.sh starts from an empty cloud
# Env: PROV_OS_STATE (default /var/lib/prov-openstack-dev), as for up.sh.
set -uo pipefail
STATE=${PROV_OS_STATE:-/var/lib/prov-openstack-dev}
PIDS=$STATE/pids
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
PURGE=0
[ "${1:-}" = "--purge" ] && PURGE=1
if [ ! -f "$PIDS" ]; then
  echo "no $PIDS: nothing to stop"
  exit 0
fi
pid_of() { awk -v n="$1" '$1==n{print $2}' "$PIDS" | tail -1; }
running() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null; }

if [ "$PURGE" = 1 ] && running "$(pid_of mariadb)"; then
  for d in keystone glance placement nova_api nova nova_cell0 neutron cinder; do
    echo "DROP DATABASE IF EXISTS $d;"
  done | mysql && echo "databases dropped"
fi

# OpenStack services in reverse start order. up.sh started each with setsid, so its PID is its
# process group: signalling the group also reaches uwsgi workers and eventlet children.
SERVICES="cinder-volume cinder-scheduler cinder-api nova-compute nova-scheduler nova-conductor nova-api
  neutron-server placement glance-api keystone"
for name in $SERVICES; do
  pid=$(pid_of "$name")
  if running "$pid"; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid"
    echo "TERM $name ($pid)"
  fi
done
for _ in $(seq 30); do
  left=0
  for name in $SERVICES; do running "$(pid_of "$name")" && left=1; done
  [ "$left" = 0 ] && break
  sleep 1
done
for name in $SERVICES; do
  pid=$(pid_of "$name")
  if running "$pid"; then
    kill -KILL -- "-$pid" 2>/dev/null
    kill -KILL "$pid" 2>/dev/null
    echo "KILL $name ($pid)"
  fi
done

# RabbitMQ's beam.smp leaves our session (its start script switches user): signal it by its PID.
for name in rabbitmq-beam rabbitmq; do
  pid=$(pid_of "$name")
  running "$pid" && kill -TERM "$pid" && echo "TERM $name ($pid)"
done
for _ in $(seq 30); do
  running "$(pid_of rabbitmq-beam)" || running "$(pid_of rabbitmq)" || break
  sleep 1
done
for name in rabbitmq-beam rabbitmq; do
  pid=$(pid_of "$name")
  running "$pid" && kill -KILL "$pid" && echo "KILL $name ($pid)"
done
pid=$(pid_of epmd)
running "$pid" && kill -TERM "$pid" && echo "TERM epmd ($pid)"

pid=$(pid_of mariadb)
if running "$pid"; then
  kill -TERM "$pid"
  echo "TERM mariadb ($pid)"
  for _ in $(seq 60); do running "$pid" || break; sleep 1; done
  running "$pid" && kill -KILL "$pid"
fi

if [ "$PURGE" = 1 ]; then
  rm -rf /var/lib/rabbitmq/mnesia/* /var/lib/glance/images/* /var/lib/cinder/fakevols/* \
         /etc/keystone/fernet-keys /etc/keystone/credential-keys "$STATE"
  echo "purged"
else
  : > "$PIDS"
fi
echo "stopped"
