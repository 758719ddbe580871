# bootstrap's fact gathering: everything the plan decides on, in ONE round trip.
# Read-only. Every probe tolerates what it probes being absent (no `set -e`): a missing
# command or file yields an empty or "no" answer, never an abort. The output is sections
# introduced by lines starting with "@@", parsed by src/facts.rs; file contents are
# printed with every line prefixed by "|" so that no content line can look like a section
# header, and exactly (a missing final newline survives).
export LC_ALL=C
{% include "containerd-config.sh" %}
# kubeadm's version, asked once: reported under @@kubernetes, and the pause image of
# bootstrap_containerd_config is that version's. Empty when kubeadm is not installed.
bootstrap_kubeadm_version=
if command -v kubeadm >/dev/null 2>&1; then
  bootstrap_kubeadm_version=$(kubeadm version -o short 2>/dev/null)
fi
yn() { if "$@" >/dev/null 2>&1; then echo yes; else echo no; fi; }

echo "@@bootstrap-facts 1"
echo "@@os-release"
cat /etc/os-release 2>/dev/null
echo "@@hostname"
hostname 2>/dev/null
echo "@@network"
# Every address on the host's interfaces and the default routes: the node IP must be one
# of them (the kubelet's --node-ip, etcd's and the API server's bind address).
ip -o addr show 2>/dev/null | awk '{ print "addr=" $2 " " $4 }'
ip -o route show default 2>/dev/null | sed 's/^/route4=/'
ip -o -6 route show default 2>/dev/null | sed 's/^/route6=/'
echo "@@resources"
# kubeadm's preflight NumCPU (Go's runtime.NumCPU: the CPUs this process may run on, as
# nproc counts them) and Mem (total RAM) checks.
echo "cpus=$(nproc 2>/dev/null)"
sed -n 's/^MemTotal:[[:space:]]*\([0-9]*\) kB$/mem_kib=\1/p' /proc/meminfo 2>/dev/null
# cgroup v2 or v1: the kubelet (libcontainer IsCgroup2UnifiedMode) asks statfs of
# /sys/fs/cgroup, and from 1.35 refuses v1.
echo "cgroup_fs=$(stat -fc %T /sys/fs/cgroup 2>/dev/null)"
echo "@@swapon"
swapon --show --noheadings 2>/dev/null
echo "@@lsmod"
lsmod 2>/dev/null
echo "@@sysctl"
for k in net.bridge.bridge-nf-call-iptables net.bridge.bridge-nf-call-ip6tables net.ipv4.ip_forward; do
  v=$(sysctl -n "$k" 2>/dev/null) && printf '%s=%s\n' "$k" "$v"
done
echo "@@packages"
for p in docker.io containerd kubelet kubeadm kubectl apt-transport-https ca-certificates curl gpg conntrack; do
  printf '%s=%s\n' "$p" "$(dpkg-query -W -f='${db:Status-Abbrev}${Version}' "$p" 2>/dev/null)"
done
echo "@@dpkg-interrupted"
dpkg-query -W -f='${db:Status-Abbrev}${Package}\n' 2>/dev/null | awk 'substr($0, 2, 1) ~ /[UFHWt]/ { print substr($0, 4) }'
echo "@@held"
apt-mark showhold 2>/dev/null
echo "@@madison-kubeadm"
apt-cache madison kubeadm 2>/dev/null
echo "@@apt"
n=0
for f in /var/lib/apt/lists/*_Packages*; do [ -e "$f" ] && n=$((n + 1)); done
echo "package_lists=$n"
echo "keyrings_dir=$(yn test -d /etc/apt/keyrings)"
echo "keyring=$(yn test -s /etc/apt/keyrings/kubernetes-apt-keyring.gpg)"
# apt reads keyrings as its unprivileged _apt user: the file must be readable by others.
echo "keyring_readable=$(yn test -n "$(find /etc/apt/keyrings/kubernetes-apt-keyring.gpg -perm -0004 2>/dev/null)")"
echo "containerd_candidate=$(apt-cache policy containerd 2>/dev/null | sed -n 's/^ *Candidate: *//p')"
echo "@@services"
for u in containerd docker kubelet; do
  printf '%s=%s %s\n' "$u" "$(systemctl is-active "$u" 2>/dev/null)" "$(systemctl is-enabled "$u" 2>/dev/null)"
done
echo "@@containerd"
if command -v containerd >/dev/null 2>&1; then
  echo "version=$(containerd --version 2>/dev/null)"
  echo "config_file=$(yn test -s /etc/containerd/config.toml)"
  if wanted=$(bootstrap_containerd_config 2>/dev/null) && printf '%s\n' "$wanted" | cmp -s - /etc/containerd/config.toml; then
    echo "config_current=yes"
  else
    echo "config_current=no"
  fi
  # Did the running containerd start before config.toml was last written? (It reads the
  # file only at start.) Ages, not dates: the process's from /proc (start in clock ticks
  # since boot vs. /proc/uptime), the file's from its mtime, both to the ~10 ms.
  pid=$(systemctl show -p MainPID --value containerd 2>/dev/null)
  if [ -n "$pid" ] && [ "$pid" != 0 ] && [ -r "/proc/$pid/stat" ] && [ -e /etc/containerd/config.toml ]; then
    ticks=$(sed 's/^.*) //' "/proc/$pid/stat" | cut -d' ' -f20)
    awk -v t="$ticks" -v c="$(getconf CLK_TCK 2>/dev/null || echo 100)" \
      -v u="$(cut -d' ' -f1 /proc/uptime)" -v n="$(date +%s.%N)" \
      -v m="$(date -r /etc/containerd/config.toml +%s.%N)" \
      'BEGIN { if (t != "" && m != "") print "started_before_config=" ((n - m < u - t / c) ? "yes" : "no") }'
  fi
  containerd config dump 2>/dev/null | sed -n 's/^[[:space:]]*\(SystemdCgroup\|disabled_plugins\|bin_dirs\?\)[[:space:]]*=[[:space:]]*/dump.\1=/p'
fi
echo "@@kubernetes"
echo "admin_conf=$(yn test -s /etc/kubernetes/admin.conf)"
echo "kubelet_conf=$(yn test -s /etc/kubernetes/kubelet.conf)"
echo "apiserver_manifest=$(yn test -s /etc/kubernetes/manifests/kube-apiserver.yaml)"
echo "root_kubeconfig_current=$(yn cmp -s /etc/kubernetes/admin.conf /root/.kube/config)"
echo "root_kubeconfig=$(yn test -e /root/.kube/config)"
# The login user's kubeconfig (under sudo, the user who called it): reset removes it only
# when it is a copy of admin.conf (kubeadm init's instructions make one), else reports it.
login_user=${SUDO_USER:-$(id -un 2>/dev/null)}
login_home=$(getent passwd "$login_user" 2>/dev/null | cut -d: -f6)
echo "login_user=$login_user"
if [ -n "$login_home" ]; then
  echo "login_kubeconfig=$(yn test -e "$login_home/.kube/config")"
  echo "login_kubeconfig_current=$(yn cmp -s /etc/kubernetes/admin.conf "$login_home/.kube/config")"
fi
# The control plane's version as kubeadm last wrote it (init or upgrade apply): the tag of
# the API server's image in its static Pod manifest. Readable while the API server is down.
echo "apiserver_image=$(sed -n 's/^[[:space:]]*image:[[:space:]]*//p' /etc/kubernetes/manifests/kube-apiserver.yaml 2>/dev/null | head -n 1)"
# `kubeadm upgrade apply` rewrites the static Pod manifests first and the kube-proxy
# add-on last: its image tells whether the last apply finished (the API server answers).
if [ -s /etc/kubernetes/admin.conf ] && command -v kubectl >/dev/null 2>&1; then
  echo "kube_proxy_image=$(kubectl --kubeconfig /etc/kubernetes/admin.conf --request-timeout=10s -n kube-system get daemonset kube-proxy -o 'jsonpath={.spec.template.spec.containers[0].image}' 2>/dev/null)"
fi
if command -v kubeadm >/dev/null 2>&1; then
  echo "kubeadm_version=$bootstrap_kubeadm_version"
fi
# Other apt sources of pkgs.k8s.io than bootstrap's own kubernetes.list (another keyring
# there makes every apt command fail: "Conflicting values set for option Signed-By").
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
  [ "$f" != /etc/apt/sources.list.d/kubernetes.list ] && [ -f "$f" ] || continue
  grep -q 'pkgs\.k8s\.io' "$f" 2>/dev/null || continue
  echo "@@apt-source $f"
  sed 's/^/|/' "$f"
  printf '\n@@eof\n'
done
{% for path in files %}
if [ -f {{ path | quote }} ]; then
  echo "@@file "{{ path | quote }}
  sed 's/^/|/' {{ path | quote }}
  printf '\n@@eof\n'
else
  echo "@@absent "{{ path | quote }}
fi
{% endfor %}
echo "@@end"
exit 0
