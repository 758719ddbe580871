# bootstrap_containerd_config prints the /etc/containerd/config.toml bootstrap wants:
# containerd's own default (never the packaged file: it may disable the CRI plugin or point
# CNI at /usr/lib/cni) with the runc runtime's SystemdCgroup = true. containerd 1.x's
# default has the line (set to false); 2.x's has none, so it is inserted right below the
# runc options table. Shared by facts.sh (is the file current?) and the runtime playbook
# (write it), so both agree on the exact bytes.
bootstrap_containerd_config() {
  _bs_cfg=$(containerd config default) || return 1
  if printf '%s\n' "$_bs_cfg" | grep -q 'SystemdCgroup = '; then
    _bs_cfg=$(printf '%s\n' "$_bs_cfg" | sed 's/SystemdCgroup = false/SystemdCgroup = true/')
  else
    _bs_cfg=$(printf '%s\n' "$_bs_cfg" | sed "/^[[:space:]]*\[plugins\.'io\.containerd\.cri\.v1\.runtime'\.containerd\.runtimes\.runc\.options\]/a\\            SystemdCgroup = true")
  fi
  if ! printf '%s\n' "$_bs_cfg" | grep -q 'SystemdCgroup = true'; then
    echo "cannot set SystemdCgroup = true: \`containerd config default\` has no runc options table this tool knows" >&2
    return 1
  fi
  printf '%s\n' "$_bs_cfg"
}
