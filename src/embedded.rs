//! The playbooks and templates compiled into the binary.
//!
//! What runs on hosts is data (playbooks/*.yaml, templates/*), but a single static binary
//! is easier to ship and to trust than a binary plus a directory it must find at run time,
//! so every file is embedded here. Adding a file means adding one line to a table.

/// `(name, YAML)` of every playbook, in the order their host-scoped steps run.
pub const PLAYBOOKS: &[(&str, &str)] = &[
    ("prereqs", include_str!("../playbooks/prereqs.yaml")),
    ("runtime", include_str!("../playbooks/runtime.yaml")),
    (
        "kubernetes-packages",
        include_str!("../playbooks/kubernetes-packages.yaml"),
    ),
    ("init", include_str!("../playbooks/init.yaml")),
    ("join", include_str!("../playbooks/join.yaml")),
    ("calico", include_str!("../playbooks/calico.yaml")),
    ("manifests", include_str!("../playbooks/manifests.yaml")),
    ("reset", include_str!("../playbooks/reset.yaml")),
    ("upgrade", include_str!("../playbooks/upgrade.yaml")),
    (
        "node-maintenance",
        include_str!("../playbooks/node-maintenance.yaml"),
    ),
];

/// `(file name, source)` of every template playbooks and the fact gathering can use.
pub const TEMPLATES: &[(&str, &str)] = &[
    ("facts.sh", include_str!("../templates/facts.sh")),
    (
        "containerd-config.sh",
        include_str!("../templates/containerd-config.sh"),
    ),
    ("dpkg-lock.sh", include_str!("../templates/dpkg-lock.sh")),
    (
        "package-revision.sh",
        include_str!("../templates/package-revision.sh"),
    ),
    (
        "modules-load-k8s.conf.j2",
        include_str!("../templates/modules-load-k8s.conf.j2"),
    ),
    (
        "sysctl-k8s.conf.j2",
        include_str!("../templates/sysctl-k8s.conf.j2"),
    ),
    (
        "kubernetes.list.j2",
        include_str!("../templates/kubernetes.list.j2"),
    ),
    (
        "kubelet-default.j2",
        include_str!("../templates/kubelet-default.j2"),
    ),
    (
        "kubeadm-init.yaml.j2",
        include_str!("../templates/kubeadm-init.yaml.j2"),
    ),
    (
        "kubeadm-join.yaml.j2",
        include_str!("../templates/kubeadm-join.yaml.j2"),
    ),
    (
        "kubeadm-taints.yaml.j2",
        include_str!("../templates/kubeadm-taints.yaml.j2"),
    ),
];
