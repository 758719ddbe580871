# bootstrap_containerd_config prints the /etc/containerd/config.toml bootstrap wants:
# containerd's own default (never the packaged file: it may disable the CRI plugin or point
# CNI at /usr/lib/cni) with the runc runtime's SystemdCgroup = true and, once kubeadm is
# installed, kubeadm's pause image as the CRI sandbox image. containerd 1.x's default has
# the SystemdCgroup line (set to false); 2.x's has none, so it is inserted right below the
# runc options table. Shared by facts.sh (is the file current?) and the playbooks (write
# it), so all agree on the exact bytes.
#
# The sandbox image: containerd's default (registry.k8s.io/pause:3.8 in 1.7) is not the
# pause image kubeadm uses, so kubeadm's preflight warns ("detected that the sandbox image
# ... of the container runtime is inconsistent with that used by kubeadm") and the node
# keeps two pause images. containerd 1.x names it `sandbox_image` in the CRI plugin, 2.x
# `sandbox` in the CRI images plugin's pinned_images.
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
  _bs_pause=$(bootstrap_kubeadm_pause)
  if [ -n "$_bs_pause" ]; then
    _bs_cfg=$(printf '%s\n' "$_bs_cfg" | sed \
      -e "s|^\([[:space:]]*sandbox_image = \)\".*\"\$|\1\"$_bs_pause\"|" \
      -e "s|^\([[:space:]]*sandbox = \)'.*'\$|\1'$_bs_pause'|")
    if ! printf '%s\n' "$_bs_cfg" | grep -q -e "sandbox_image = \"$_bs_pause\"" -e "sandbox = '$_bs_pause'"; then
      echo "cannot set the sandbox image $_bs_pause: \`containerd config default\` has no sandbox_image (1.x) or pinned_images sandbox (2.x) line" >&2
      return 1
    fi
  fi
  printf '%s\n' "$_bs_cfg"
}

# bootstrap_kubeadm_pause prints the pause image of the installed kubeadm, nothing when
# kubeadm is not installed: `kubeadm config images list` for kubeadm's own version (the
# pause tag is a constant of each kubeadm release; the version keeps kubeadm from asking
# dl.k8s.io for the latest release). A caller that already asked `kubeadm version -o
# short` passes the answer in bootstrap_kubeadm_version (facts.sh: one kubeadm start
# fewer per host and run); the playbooks, which may just have installed another kubeadm,
# leave it unset.
bootstrap_kubeadm_pause() {
  if [ "${bootstrap_kubeadm_version+set}" = set ]; then
    _bs_kv=$bootstrap_kubeadm_version
    [ -n "$_bs_kv" ] || return 0
  else
    command -v kubeadm >/dev/null 2>&1 || return 0
    _bs_kv=$(kubeadm version -o short 2>/dev/null) || return 0
  fi
  kubeadm config images list --kubernetes-version "$_bs_kv" 2>/dev/null | grep -m1 '/pause:' || :
}

# bootstrap_containerd_update writes /etc/containerd/config.toml when it is not what
# bootstrap_containerd_config prints, and restarts containerd then (it reads the file
# only when it starts).
bootstrap_containerd_update() {
  _bs_want=$(bootstrap_containerd_config) || return 1
  if printf '%s\n' "$_bs_want" | cmp -s - /etc/containerd/config.toml; then
    echo "/etc/containerd/config.toml is already up to date"
    return 0
  fi
  mkdir -p /etc/containerd
  printf '%s\n' "$_bs_want" | install -m 0644 /dev/stdin /etc/containerd/config.toml
  systemctl restart containerd
}
