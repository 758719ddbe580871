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

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs templates/dpkg-lock.sh's `bootstrap_dpkg_wait` on a fake apt written from
    /// `script` (as `DIR/fake-apt`, so it can keep state beside itself) under `timeout 20`,
    /// with `env` added. The output and the fake's directory.
    fn wait_on_fake_apt(
        script: &str,
        env: &[(&str, &str)],
    ) -> (std::process::Output, tempfile::TempDir) {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let wrapper = TEMPLATES
            .iter()
            .find(|(name, _)| *name == "dpkg-lock.sh")
            .unwrap()
            .1;
        let fake = dir.path().join("fake-apt");
        std::fs::write(&fake, script).unwrap();
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let out = std::process::Command::new("timeout")
            .args(["20", "sh", "-c"])
            .arg(format!("{wrapper}\nbootstrap_dpkg_wait \"$0\""))
            .arg(&fake)
            .envs(env.iter().copied())
            .output()
            .unwrap();
        (out, dir)
    }

    /// The lock wrapper retries a held lock whatever the host's locale: apt and dpkg
    /// translate "Could not get lock", so the command must run in the C locale.
    #[test]
    fn the_lock_wrapper_retries_in_any_locale() {
        // Fails once with the lock message (in German unless LC_ALL=C), then succeeds.
        let (out, _dir) = wait_on_fake_apt(
            "#!/bin/sh\n\
             [ -e \"$0.done\" ] && { echo installed; exit 0; }\n\
             touch \"$0.done\"\n\
             if [ \"$LC_ALL\" = C ]; then echo 'E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 7 (apt-get)' >&2;\n\
             else echo 'E: Sperre /var/lib/dpkg/lock-frontend konnte nicht erlangt werden.' >&2; fi\n\
             exit 100\n",
            &[("LC_ALL", "de_DE.UTF-8"), ("LANG", "de_DE.UTF-8")],
        );
        assert!(out.status.success(), "{out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "installed\n");
    }

    /// apt-get that waited for dpkg's frontend lock (DPkg::Lock::Timeout) prints "Waiting
    /// for cache lock: Could not get lock ..." as progress; when it then fails for another
    /// reason, that failure is reported at once with apt's own words, not retried for
    /// 600 s as a held lock (nor announced as "waiting for dpkg's lock").
    #[test]
    fn a_failure_after_waiting_for_the_lock_is_not_a_held_lock() {
        // What real apt-get (quiet without a terminal) prints in that case, run counted.
        let (out, dir) = wait_on_fake_apt(
            "#!/bin/sh\n\
             echo run >> \"$0.runs\"\n\
             echo 'Waiting for cache lock: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 7 (unattended-upgr)...'\n\
             echo \"E: Version '1.35.4-1.1' for 'kubeadm' was not found\" >&2\n\
             exit 100\n",
            &[("BOOTSTRAP_LOCK_WAIT", "10")],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(100), "{out:?}");
        assert!(
            stderr.contains("E: Version '1.35.4-1.1' for 'kubeadm' was not found"),
            "{stderr}"
        );
        assert!(
            !stderr.contains("waiting for") && !stderr.contains("gave up"),
            "{stderr}"
        );
        let runs = std::fs::read_to_string(dir.path().join("fake-apt.runs")).unwrap();
        assert_eq!(runs.lines().count(), 1, "retried: {stderr}");
    }
}
