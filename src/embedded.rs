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
    /// Runs templates/dpkg-lock.sh's `bootstrap_dpkg_wait` (rendered for
    /// `packageLockWait: 10`) on a fake apt written from `script` (as `DIR/fake-apt`, so
    /// it can keep state beside itself) under `timeout 20`, with `env` added. The output
    /// and the fake's directory.
    fn wait_on_fake_apt(
        script: &str,
        env: &[(&str, &str)],
    ) -> (std::process::Output, tempfile::TempDir) {
        wait_on_fake_apt_with(script, env, "")
    }

    /// [`wait_on_fake_apt`] with `args` (shell words) after the fake's path.
    fn wait_on_fake_apt_with(
        script: &str,
        env: &[(&str, &str)],
        args: &str,
    ) -> (std::process::Output, tempfile::TempDir) {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let wrapper = crate::playbook::render_template(
            "dpkg-lock.sh",
            &minijinja::context! { cluster => minijinja::context! { package_lock_wait => 10 } },
        )
        .unwrap();
        let fake = dir.path().join("fake-apt");
        std::fs::write(&fake, script).unwrap();
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let out = std::process::Command::new("timeout")
            .args(["20", "sh", "-c"])
            .arg(format!("{wrapper}\nbootstrap_dpkg_wait \"$0\" {args}"))
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

    /// Runs the wrapper on a fake apt-get that prints apt's "Waiting for cache lock"
    /// progress and then `error` (exit 100): it must run once and its stderr hold `want`
    /// and none of `not`.
    fn assert_reported_once_after_waiting(error: &str, want: &[&str], not: &[&str]) {
        let (out, dir) = wait_on_fake_apt(
            &format!(
                "#!/bin/sh\n\
                 echo run >> \"$0.runs\"\n\
                 echo 'Waiting for cache lock: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 7 (unattended-upgr)...'\n\
                 echo \"{error}\" >&2\n\
                 exit 100\n"
            ),
            &[],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(100), "{out:?}");
        for w in want {
            assert!(stderr.contains(w), "{w:?} not in {stderr}");
        }
        for n in not {
            assert!(!stderr.contains(n), "{n:?} in {stderr}");
        }
        let runs = std::fs::read_to_string(dir.path().join("fake-apt.runs")).unwrap();
        assert_eq!(runs.lines().count(), 1, "retried: {stderr}");
    }

    /// apt-get that waited for dpkg's frontend lock (DPkg::Lock::Timeout) prints "Waiting
    /// for cache lock: Could not get lock ..." as progress; when it then fails for another
    /// reason, that failure is reported at once with apt's own words, not retried until
    /// packageLockWait ran out as a held lock (nor announced as "waiting for dpkg's lock").
    #[test]
    fn a_failure_after_waiting_for_the_lock_is_not_a_held_lock() {
        let e = "E: Version '1.35.4-1.1' for 'kubeadm' was not found";
        assert_reported_once_after_waiting(e, &[e], &["waiting for", "gave up"]);
    }

    /// apt-get that waited DPkg::Lock::Timeout for dpkg's lock and gave up ("E: Unable to
    /// acquire the dpkg frontend lock"): the wait is spent, so it is reported at once as
    /// given up, with apt's own lines, not retried.
    #[test]
    fn apt_giving_up_on_dpkg_s_lock_is_reported_not_retried() {
        let e = "E: Unable to acquire the dpkg frontend lock (/var/lib/dpkg/lock-frontend), is another process using it?";
        assert_reported_once_after_waiting(
            e,
            &[
                e,
                "gave up: another process held dpkg's lock for ",
                "s (apt-get's DPkg::Lock::Timeout ran out)",
            ],
            &[],
        );
    }

    /// After waiting for apt's lists lock, the retry's apt-get may wait for dpkg's lock
    /// only what is left of packageLockWait (10 s here, at least 2 s spent): its
    /// DPkg::Lock::Timeout is lowered, the other arguments kept in order.
    #[test]
    fn a_retry_waits_for_dpkg_s_lock_only_what_is_left() {
        let (out, _dir) = wait_on_fake_apt_with(
            "#!/bin/sh\n\
             [ -e \"$0.done\" ] && { echo \"$@\"; exit 0; }\n\
             touch \"$0.done\"\n\
             echo 'E: Could not get lock /var/lib/apt/lists/lock. It is held by process 7 (apt-get)' >&2\n\
             exit 100\n",
            &[],
            "-o DPkg::Lock::Timeout=10 -o 'Dpkg::Options::=--force-confold' update",
        );
        assert!(out.status.success(), "{out:?}");
        let args = String::from_utf8_lossy(&out.stdout);
        let left: u64 = args
            .strip_prefix("-o DPkg::Lock::Timeout=")
            .and_then(|r| r.strip_suffix(" -o Dpkg::Options::=--force-confold update\n"))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{args}"));
        assert!(left <= 8, "{args}");
    }
}
