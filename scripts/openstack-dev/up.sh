#!/bin/bash
# scripts/openstack-dev/up.sh - bring up a real OpenStack Zed control plane on loopback from
# Debian 12 packages, for the OpenStack provider's opt-in tests (`ctest -L openstack`).
#
# Services: MariaDB, RabbitMQ, Keystone, Glance, Placement, Nova (api, conductor, scheduler and
# compute with nova's fake virt driver), Neutron (ML2 + openvswitch mechanism driver, no agents),
# Cinder (api, scheduler, volume with cinder's fake LVM-derived driver). Everything binds to
# 127.0.0.1 and runs as plain background processes (no systemd). There is no data plane: servers
# reach ACTIVE, ports and floating IPs stay DOWN, nothing is reachable over the network.
#
# Idempotent: a re-run skips what is installed, created or running.
# Writes $STATE/openrc (OS_* variables), $STATE/pids ("name pid" lines), $STATE/logs/*.log.
# Env: PROV_OS_STATE (default /var/lib/prov-openstack-dev), PROV_OS_PASSWORD (default secret),
#      PROV_OS_COMPUTE_HOST (default prov-dev-compute).
# Cost on 2 cores: ~270 s of apt-get the first time, then ~130 s; about 2 GiB of RAM.
set -euo pipefail
STATE=${PROV_OS_STATE:-/var/lib/prov-openstack-dev}
PASSWORD=${PROV_OS_PASSWORD:-secret}
COMPUTE_HOST=${PROV_OS_COMPUTE_HOST:-prov-dev-compute}
# The services live in Debian's dist-packages: never a pyenv/venv python.
SYS_PYTHON=/usr/bin/python3
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
unset PYTHONPATH PYTHONHOME VIRTUAL_ENV || true
LOGS=$STATE/logs
PIDS=$STATE/pids
mkdir -p "$LOGS"
touch "$PIDS"
STARTED=$(date +%s)
note() { echo "[openstack-dev +$(( $(date +%s) - STARTED ))s] $*"; }

KEYSTONE=http://127.0.0.1:5000
DB_URL="mysql+pymysql://openstack:$PASSWORD@127.0.0.1"
MQ_URL="rabbit://openstack:$PASSWORD@127.0.0.1:5672/"
DATABASES="keystone glance placement nova_api nova nova_cell0 neutron cinder"

# ------------------------------------------------------------------------------------------------
install_packages() {
  local wanted="mariadb-server rabbitmq-server python3-pymysql keystone placement-api nova-api
    nova-conductor nova-scheduler neutron-api neutron-rpc-server glance-api cinder-api
    cinder-scheduler cinder-volume python3-openstackclient uwsgi-plugin-python3 qemu-utils curl"
  local missing="" pkg
  for pkg in $wanted; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $pkg"
  done
  [ -z "$missing" ] && return 0
  note "installing:$missing"
  # Package scripts must neither start daemons nor set up databases or catalog entries: we do that.
  local own_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    own_policy=1
  fi
  local q
  for q in keystone/configure_db keystone/create-admin-tenant keystone/register-endpoint; do
    echo "keystone $q boolean false"; done | debconf-set-selections
  for svc in nova neutron glance cinder; do
    for q in configure_db configure_rabbit configure_ksat; do echo "$svc-common $svc/$q boolean false"; done
  done | debconf-set-selections
  {
    echo "nova-common nova/configure_neutron boolean false"
    echo "nova-common nova/configure_placement boolean false"
    echo "nova-api novaapi/configure_db boolean false"
    echo "neutron-common neutron/configure_nova boolean false"
    echo "placement-common placement/configure_db boolean false"
    echo "placement-common placement/configure_ksat boolean false"
    for p in nova-api:nova neutron-api:neutron glance-api:glance cinder-api:cinder placement-api:placement; do
      echo "${p%%:*} ${p#*:}/configure_api-endpoint boolean false"
    done
  } | debconf-set-selections
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing > "$LOGS/apt.log" 2>&1
  if [ "$own_policy" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
  note "packages installed"
}

# ------------------------------------------------------------------------------------------------
pid_of() { awk -v n="$1" '$1==n{print $2}' "$PIDS" | tail -1; }
running() { local pid; pid=$(pid_of "$1"); [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; }
# launch NAME CMD...: own session (so down.sh can signal the group), log in $LOGS/NAME.log.
launch() {
  local name=$1; shift
  if running "$name"; then note "$name already running"; return 0; fi
  setsid "$@" >> "$LOGS/$name.log" 2>&1 < /dev/null &
  local pid=$!
  sed -i "/^$name /d" "$PIDS"
  echo "$name $pid" >> "$PIDS"
  note "started $name (pid $pid)"
}
await_port() {
  local i
  for i in $(seq 1 "${2:-120}"); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 1; done
  echo "port $1 never opened" >&2; return 1
}
await_http() {
  local i
  for i in $(seq 1 "${2:-120}"); do curl -s -o /dev/null "http://127.0.0.1:$1/" && return 0; sleep 1; done
  echo "nothing answers HTTP on port $1" >&2; return 1
}

# ------------------------------------------------------------------------------------------------
start_db_and_broker() {
  mkdir -p /run/mysqld
  chown mysql:mysql /run/mysqld
  launch mariadb /usr/sbin/mariadbd --user=mysql --bind-address=127.0.0.1 --skip-networking=0 --max-connections=500
  cat > /etc/rabbitmq/rabbitmq-env.conf <<CONF
NODENAME=rabbit@localhost
NODE_IP_ADDRESS=127.0.0.1
NODE_PORT=5672
SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
CONF
  ERL_EPMD_ADDRESS=127.0.0.1 launch rabbitmq env ERL_EPMD_ADDRESS=127.0.0.1 /usr/sbin/rabbitmq-server
  await_port 3306
  local i
  for i in $(seq 60); do mysqladmin ping > /dev/null 2>&1 && break; sleep 1; done
  {
    echo "CREATE USER IF NOT EXISTS 'openstack'@'localhost' IDENTIFIED BY '$PASSWORD';"
    echo "CREATE USER IF NOT EXISTS 'openstack'@'127.0.0.1' IDENTIFIED BY '$PASSWORD';"
    local d
    for d in $DATABASES; do
      echo "CREATE DATABASE IF NOT EXISTS $d CHARACTER SET utf8mb4;"
      echo "GRANT ALL ON $d.* TO 'openstack'@'localhost'; GRANT ALL ON $d.* TO 'openstack'@'127.0.0.1';"
    done
  } | mysql
  await_port 5672
  for i in $(seq 60); do rabbitmqctl -q status > /dev/null 2>&1 && break; sleep 1; done
  rabbitmqctl -q list_users | grep -q '^openstack' || rabbitmqctl -q add_user openstack "$PASSWORD"
  rabbitmqctl -q set_permissions openstack '.*' '.*' '.*'
  # beam.smp and epmd leave the session we started: record them so down.sh can stop them.
  local beam epmd
  beam=$(rabbitmqctl -q eval 'list_to_integer(os:getpid()).' 2>/dev/null | tr -dc 0-9)
  epmd=$(ss -ltnpH 'sport = :4369' | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2)
  sed -i '/^rabbitmq-beam /d; /^epmd /d' "$PIDS"
  [ -n "$beam" ] && echo "rabbitmq-beam $beam" >> "$PIDS"
  [ -n "$epmd" ] && echo "epmd $epmd" >> "$PIDS"
  note "mariadb and rabbitmq ready"
}

# ------------------------------------------------------------------------------------------------
keystone_authtoken() {
  printf '[keystone_authtoken]\nwww_authenticate_uri = %s\nauth_url = %s\nauth_type = password\n' "$KEYSTONE" "$KEYSTONE"
  printf 'project_domain_name = Default\nuser_domain_name = Default\nproject_name = service\n'
  printf 'username = %s\npassword = %s\nservice_token_roles_required = true\n' "$1" "$PASSWORD"
}
# service_auth SECTION USER: credentials one service uses to call another.
service_auth() {
  printf '[%s]\nauth_type = password\nauth_url = %s\nproject_domain_name = Default\n' "$1" "$KEYSTONE"
  printf 'user_domain_name = Default\nproject_name = service\nusername = %s\npassword = %s\nregion_name = RegionOne\n' "$2" "$PASSWORD"
}

write_configs() {
  local f
  for f in /etc/keystone/keystone.conf /etc/glance/glance-api.conf /etc/placement/placement.conf \
           /etc/nova/nova.conf /etc/neutron/neutron.conf /etc/neutron/plugins/ml2/ml2_conf.ini /etc/cinder/cinder.conf; do
    [ -e "$f.dist" ] || cp -a "$f" "$f.dist"
  done
  printf '[DEFAULT]\nuse_stderr = true\n[database]\nconnection = %s/keystone\n[token]\nprovider = fernet\n' "$DB_URL" \
    > /etc/keystone/keystone.conf

  mkdir -p /var/lib/glance/images
  cat > /etc/glance/glance-api.conf <<CONF
[DEFAULT]
bind_host = 127.0.0.1
bind_port = 9292
workers = 1
use_stderr = true
enabled_backends = file:file
[glance_store]
default_backend = file
[file]
filesystem_store_datadir = /var/lib/glance/images/
[database]
connection = $DB_URL/glance
[paste_deploy]
flavor = keystone
[oslo_concurrency]
lock_path = /var/lib/glance/tmp
$(keystone_authtoken glance)
CONF

  cat > /etc/placement/placement.conf <<CONF
[DEFAULT]
use_stderr = true
[placement_database]
connection = $DB_URL/placement
[api]
auth_strategy = keystone
$(keystone_authtoken placement)
CONF

  mkdir -p /var/lib/nova/instances /var/lib/nova/tmp
  # Nova sends service tokens: cinder (CVE-2023-2088 fix) needs them for attachment deletes.
  cat > /etc/nova/nova.conf <<CONF
[DEFAULT]
host = $COMPUTE_HOST
my_ip = 127.0.0.1
transport_url = $MQ_URL
compute_driver = fake.FakeDriver
enabled_apis = osapi_compute
osapi_compute_listen = 127.0.0.1
osapi_compute_listen_port = 8774
osapi_compute_workers = 1
state_path = /var/lib/nova
instances_path = /var/lib/nova/instances
use_stderr = true
[api]
auth_strategy = keystone
[api_database]
connection = $DB_URL/nova_api
[database]
connection = $DB_URL/nova
[conductor]
workers = 1
[scheduler]
workers = 1
discover_hosts_in_cells_interval = 10
[oslo_concurrency]
lock_path = /var/lib/nova/tmp
[vnc]
enabled = false
[glance]
region_name = RegionOne
[cinder]
os_region_name = RegionOne
$(keystone_authtoken nova)
$(service_auth placement nova)
$(service_auth neutron nova)
$(service_auth service_user nova)
send_service_user_token = true
CONF

  mkdir -p /var/lib/neutron/tmp
  cat > /etc/neutron/neutron.conf <<CONF
[DEFAULT]
bind_host = 127.0.0.1
bind_port = 9696
core_plugin = ml2
service_plugins = router
auth_strategy = keystone
transport_url = $MQ_URL
api_workers = 1
rpc_workers = 1
rpc_state_report_workers = 1
allow_overlapping_ips = true
notify_nova_on_port_status_changes = true
notify_nova_on_port_data_changes = true
use_stderr = true
state_path = /var/lib/neutron
[database]
connection = $DB_URL/neutron
[oslo_concurrency]
lock_path = /var/lib/neutron/tmp
$(keystone_authtoken neutron)
$(service_auth nova neutron)
CONF
  cat > /etc/neutron/plugins/ml2/ml2_conf.ini <<CONF
[ml2]
type_drivers = flat,vxlan
tenant_network_types = vxlan
mechanism_drivers = openvswitch
extension_drivers = port_security
[ml2_type_flat]
flat_networks = public
[ml2_type_vxlan]
vni_ranges = 1:1000
[securitygroup]
enable_security_group = true
CONF

  mkdir -p /var/lib/cinder/tmp /var/lib/cinder/fakevols
  # The fake driver writes image data to /dev/mapper/cinder--volumes-volume--<id>; without
  # device-mapper in a container, /dev/mapper becomes a link to a plain directory.
  [ -e /dev/mapper ] || ln -s /var/lib/cinder/fakevols /dev/mapper
  cat > /etc/cinder/cinder.conf <<CONF
[DEFAULT]
transport_url = $MQ_URL
auth_strategy = keystone
my_ip = 127.0.0.1
osapi_volume_listen = 127.0.0.1
osapi_volume_listen_port = 8776
osapi_volume_workers = 1
enabled_backends = fake
state_path = /var/lib/cinder
use_stderr = true
[database]
connection = $DB_URL/cinder
[oslo_concurrency]
lock_path = /var/lib/cinder/tmp
[fake]
volume_driver = cinder.tests.fake_driver.FakeLoggingVolumeDriver
volume_backend_name = fake
volume_group = cinder-volumes
$(keystone_authtoken cinder)
$(service_auth nova cinder)
CONF
  note "configuration written"
}

# ------------------------------------------------------------------------------------------------
# uwsgi's http-socket resets keep-alive connections: answer every request with Connection: close.
UWSGI="uwsgi --plugin python3 --master --die-on-term --enable-threads --lazy-apps --need-app
  --buffer-size 65535 --processes 1 --threads 4 --add-header Connection:close"

start_keystone() {
  {
    keystone-manage db_sync
    keystone-manage fernet_setup --keystone-user keystone --keystone-group keystone
    keystone-manage credential_setup --keystone-user keystone --keystone-group keystone
    keystone-manage bootstrap --bootstrap-password "$PASSWORD" --bootstrap-admin-url "$KEYSTONE/v3/" \
      --bootstrap-internal-url "$KEYSTONE/v3/" --bootstrap-public-url "$KEYSTONE/v3/" \
      --bootstrap-region-id RegionOne
  } >> "$LOGS/keystone-manage.log" 2>&1
  launch keystone $UWSGI --http-socket 127.0.0.1:5000 --wsgi-file /usr/bin/keystone-wsgi-public --chdir /var/lib/keystone
  await_http 5000
  cat > "$STATE/openrc" <<RC
export OS_AUTH_URL=$KEYSTONE/v3
export OS_IDENTITY_API_VERSION=3
export OS_USERNAME=admin
export OS_PASSWORD=$PASSWORD
export OS_PROJECT_NAME=admin
export OS_USER_DOMAIN_NAME=Default
export OS_PROJECT_DOMAIN_NAME=Default
export OS_REGION_NAME=RegionOne
export OS_INTERFACE=public
RC
  # Service project, roles, service users and the catalog: one openstacksdk process.
  ( . "$STATE/openrc"; PASSWORD="$PASSWORD" "$SYS_PYTHON" - <<'PY'
import os, openstack
password = os.environ["PASSWORD"]
cloud = openstack.connect(cloud="envvars")
identity = cloud.identity
domain = identity.find_domain("default")
project = identity.find_project("service", domain_id=domain.id) or identity.create_project(name="service", domain_id=domain.id)
roles = {name: identity.find_role(name) or identity.create_role(name=name) for name in ("admin", "service", "member")}
catalog = {"glance": ("image", 9292, ""), "placement": ("placement", 8778, ""), "nova": ("compute", 8774, "/v2.1"),
           "neutron": ("network", 9696, ""), "cinder": ("volumev3", 8776, "/v3/%(project_id)s")}
present = {s.type for s in identity.services()}
for user_name, (service_type, port, path) in catalog.items():
    user = identity.find_user(user_name, domain_id=domain.id) or identity.create_user(name=user_name, domain_id=domain.id, password=password)
    for role in ("admin", "service"):
        identity.assign_project_role_to_user(project, user, roles[role])
    if service_type not in present:
        service = identity.create_service(name=user_name, type=service_type)
        for interface in ("public", "internal", "admin"):
            identity.create_endpoint(service_id=service.id, interface=interface,
                                     url="http://127.0.0.1:%d%s" % (port, path), region_id="RegionOne")
PY
  )
  note "keystone ready"
}

sync_databases() {
  {
    glance-manage db_sync
    placement-manage db sync
    nova-manage api_db sync
    local cells
    cells=$(nova-manage cell_v2 list_cells 2>/dev/null || true)
    grep -q ' cell0 ' <<< "$cells" || nova-manage cell_v2 map_cell0
    grep -q ' cell1 ' <<< "$cells" || nova-manage cell_v2 create_cell --name=cell1
    nova-manage db sync
    neutron-db-manage --config-file /etc/neutron/neutron.conf --config-file /etc/neutron/plugins/ml2/ml2_conf.ini upgrade heads
    cinder-manage db sync
  } >> "$LOGS/dbsync.log" 2>&1
  note "database schemas in place"
}

start_services() {
  launch glance-api /usr/bin/glance-api --config-file /etc/glance/glance-api.conf
  launch placement $UWSGI --http-socket 127.0.0.1:8778 --wsgi-file /usr/bin/placement-api
  launch neutron-server /usr/bin/neutron-server --config-file /etc/neutron/neutron.conf \
    --config-file /etc/neutron/plugins/ml2/ml2_conf.ini
  launch nova-api /usr/bin/nova-api --config-file /etc/nova/nova.conf
  launch nova-conductor /usr/bin/nova-conductor --config-file /etc/nova/nova.conf
  launch nova-scheduler /usr/bin/nova-scheduler --config-file /etc/nova/nova.conf
  # Only python3-nova is needed for the compute service: the nova-compute package would pull in
  # qemu, libvirt, open-iscsi and ovmf for nothing (the fake driver runs no guests).
  launch nova-compute "$SYS_PYTHON" -c 'import sys; from nova.cmd.compute import main; sys.exit(main())' \
    --config-file /etc/nova/nova.conf
  launch cinder-api /usr/bin/cinder-api --config-file /etc/cinder/cinder.conf
  launch cinder-scheduler /usr/bin/cinder-scheduler --config-file /etc/cinder/cinder.conf
  launch cinder-volume /usr/bin/cinder-volume --config-file /etc/cinder/cinder.conf
  local port
  for port in 9292 8778 9696 8774 8776; do await_http "$port" 180; done
  note "all APIs answer"
}

# ------------------------------------------------------------------------------------------------
seed_cloud() {
  # No OVS agent runs. ML2's openvswitch mechanism driver binds a port only on a host with a live
  # "Open vSwitch agent": one agents row whose heartbeat lies in 2099 is always alive. Ports then
  # bind (vif_type=ovs) and stay DOWN. ovs_capabilities must be an object, not a list.
  local conf='{"bridge_mappings": {"public": "br-ex"}, "tunnel_types": ["vxlan"], "tunneling_ip": "127.0.0.1", "integration_bridge": "br-int", "datapath_type": "system", "ovs_hybrid_plug": false, "ovs_capabilities": {}, "l2_population": false, "devices": 0}'
  mysql neutron -e "INSERT IGNORE INTO agents (id, agent_type, \`binary\`, topic, host, admin_state_up,
    created_at, started_at, heartbeat_timestamp, description, configurations, \`load\`, resources_synced)
    VALUES ('5eed0000-0000-4000-8000-0000000000a1', 'Open vSwitch agent', 'neutron-openvswitch-agent', 'N/A',
    '$COMPUTE_HOST', 1, NOW(), NOW(), '2099-01-01 00:00:00', 'fake agent row (scripts/openstack-dev)', '$conf', 0, 1);"
  ( . "$STATE/openrc"; STATE="$STATE" "$SYS_PYTHON" - <<'PY'
import os, subprocess, time, openstack
cloud = openstack.connect(cloud="envvars")
for _ in range(90):
    if any(s.binary == "nova-compute" and s.state == "up" for s in cloud.compute.services()):
        break
    time.sleep(2)
subprocess.run(["nova-manage", "cell_v2", "discover_hosts"], check=True, capture_output=True)
for _ in range(90):
    if list(cloud.compute.hypervisors()):
        break
    time.sleep(2)
if not cloud.compute.find_flavor("m1.tiny"):
    cloud.compute.create_flavor(name="m1.tiny", vcpus=1, ram=128, disk=1)
if not cloud.compute.find_flavor("m1.small"):
    cloud.compute.create_flavor(name="m1.small", vcpus=2, ram=512, disk=1)
# A flavor that requires a trait no host has: the scheduler finds no valid host and the server
# goes to ERROR, which is how the tests make a step fail for real.
if not cloud.compute.find_flavor("x1.unplaceable"):
    flavor = cloud.compute.create_flavor(name="x1.unplaceable", vcpus=1, ram=64, disk=1)
    cloud.compute.create_flavor_extra_specs(flavor, {"trait:CUSTOM_PROV_NO_SUCH_HOST": "required"})
# More RAM than the project's default quota (51200 MB): Nova refuses the server (403).
if not cloud.compute.find_flavor("x1.overquota"):
    cloud.compute.create_flavor(name="x1.overquota", vcpus=1, ram=4000000, disk=1)
if not cloud.image.find_image("tiny-raw"):
    path = os.path.join(os.environ["STATE"], "tiny.raw")
    with open(path, "wb") as out:
        out.write(b"\0" * 1048576)
    cloud.create_image("tiny-raw", filename=path, disk_format="raw", container_format="bare",
                       visibility="public", wait=True)
net = cloud.network
public = net.find_network("public") or net.create_network(
    name="public", is_router_external=True, is_shared=True,
    provider_network_type="flat", provider_physical_network="public")
if not net.find_subnet("public-subnet"):
    net.create_subnet(name="public-subnet", network_id=public.id, ip_version=4, cidr="203.0.113.0/24",
                      is_dhcp_enabled=False, gateway_ip="203.0.113.1",
                      allocation_pools=[{"start": "203.0.113.10", "end": "203.0.113.250"}])
private = net.find_network("private") or net.create_network(name="private")
subnet = net.find_subnet("private-subnet") or net.create_subnet(
    name="private-subnet", network_id=private.id, ip_version=4, cidr="10.0.0.0/24", dns_nameservers=["127.0.0.1"])
if not net.find_router("router1"):
    router = net.create_router(name="router1", external_gateway_info={"network_id": public.id})
    net.add_interface_to_router(router, subnet_id=subnet.id)
PY
  )
  note "cloud seeded: flavors m1.tiny/m1.small/x1.unplaceable/x1.overquota, image tiny-raw, networks public/private, router1"
}

install_packages
start_db_and_broker
write_configs
start_keystone
sync_databases
start_services
seed_cloud
note "ready; connection: $STATE/openrc (export PROV_OPENSTACK_RC=$STATE/openrc)"
